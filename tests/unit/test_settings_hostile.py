"""Hostile configuration: every invalid setting is refused at start-up, in one line naming it.

The table goes through :func:`load_settings` (what every brink process calls first); the last
tests start the real ``python -m demo_service`` with a bad setting and read what it prints.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from demo_service.settings import SettingsError, load_settings

HOSTILE: list[tuple[dict[str, str], str]] = [
    # The pool under test.
    ({"BRINK_DB__POOL_MAX": "0"}, "BRINK_DB__POOL_MAX"),
    ({"BRINK_DB__POOL_MAX": "-5"}, "BRINK_DB__POOL_MAX"),
    ({"BRINK_DB__POOL_MIN": "-1"}, "BRINK_DB__POOL_MIN"),
    ({"BRINK_DB__POOL_MIN": "8", "BRINK_DB__POOL_MAX": "4"}, "BRINK_DB__POOL_MIN"),
    ({"BRINK_DB__POOL_MAX": "many"}, "BRINK_DB__POOL_MAX"),
    # Timeouts: 0 and negative are refused (0 would mean "fail at once", not "none").
    ({"BRINK_DB__CONNECT_TIMEOUT_S": "0"}, "BRINK_DB__CONNECT_TIMEOUT_S"),
    ({"BRINK_DB__ACQUIRE_TIMEOUT_S": "-0.5"}, "BRINK_DB__ACQUIRE_TIMEOUT_S"),
    ({"BRINK_EXTERNAL__READ_TIMEOUT_S": "0"}, "BRINK_EXTERNAL__READ_TIMEOUT_S"),
    ({"BRINK_EXTERNAL__POOL_TIMEOUT_S": "-1"}, "BRINK_EXTERNAL__POOL_TIMEOUT_S"),
    ({"BRINK_SERVER__DRAIN_TIMEOUT_S": "0"}, "BRINK_SERVER__DRAIN_TIMEOUT_S"),
    ({"BRINK_PG_EXPORTER__SCRAPE_TIMEOUT_S": "-2"}, "BRINK_PG_EXPORTER__SCRAPE_TIMEOUT_S"),
    ({"BRINK_RESILIENCE__DEADLINES__EXTERNAL_S": "-1"}, "BRINK_RESILIENCE__DEADLINES__EXTERNAL_S"),
    # Presets and knobs that do not hold together.
    ({"BRINK_RESILIENCE__PRESET": "sturdy"}, "BRINK_RESILIENCE__PRESET"),
    ({"BRINK_RESILIENCE__RETRY__POLICY": "forever"}, "BRINK_RESILIENCE__RETRY__POLICY"),
    ({"BRINK_RESILIENCE__BREAKER__MIN_CALLS": "50"}, "BRINK_RESILIENCE__BREAKER__MIN_CALLS"),
    # URLs, DSNs, hosts and ports.
    ({"BRINK_EXTERNAL__URL": "not a url"}, "BRINK_EXTERNAL__URL"),
    ({"BRINK_EXTERNAL__URL": "ftp://127.0.0.1/"}, "BRINK_EXTERNAL__URL"),
    ({"BRINK_DB__DSN": "mysql://brink@127.0.0.1/brink"}, "BRINK_DB__DSN"),
    ({"BRINK_DB__DSN": "postgresql://brink@127.0.0.1:port/brink"}, "BRINK_DB__DSN"),
    ({"BRINK_DB__DSN": "postgresql://brink@127.0.0.1:99999/brink"}, "BRINK_DB__DSN"),
    ({"BRINK_SERVER__PORT": "0"}, "BRINK_SERVER__PORT"),
    ({"BRINK_SERVER__PORT": "65536"}, "BRINK_SERVER__PORT"),
    ({"BRINK_SLOW_API__PORT": "-80"}, "BRINK_SLOW_API__PORT"),
    ({"BRINK_PG_EXPORTER__PORT": "http"}, "BRINK_PG_EXPORTER__PORT"),
    ({"BRINK_SERVER__HOST": ""}, "BRINK_SERVER__HOST"),
    ({"BRINK_SLOW_API__HOST": "127.0.0.1; rm -rf /"}, "BRINK_SLOW_API__HOST"),
    # The admin token: too short.
    ({"BRINK_ADMIN_TOKEN": "hunter2"}, "BRINK_ADMIN_TOKEN"),
    # NaN and infinity pass a naive "> 0" or "<= max" check; they are not numbers of seconds.
    ({"BRINK_SLOW_API__BASE_LATENCY_S": "nan"}, "BRINK_SLOW_API__BASE_LATENCY_S"),
    ({"BRINK_SLOW_API__ERROR_RATE": "NaN"}, "BRINK_SLOW_API__ERROR_RATE"),
    ({"BRINK_DB__EXTRA_LATENCY_S": "inf"}, "BRINK_DB__EXTRA_LATENCY_S"),
    ({"BRINK_EXTERNAL__CONNECT_TIMEOUT_S": "-inf"}, "BRINK_EXTERNAL__CONNECT_TIMEOUT_S"),
    ({"BRINK_RESILIENCE__DEADLINES__DB_ACQUIRE_S": "nan"}, "BRINK_RESILIENCE__DEADLINES__DB"),
    ({"BRINK_RESILIENCE__RETRY__BASE_DELAY_S": "inf"}, "BRINK_RESILIENCE__RETRY__BASE_DELAY_S"),
    # Limits out of range.
    ({"BRINK_SERVER__MAX_BODY_BYTES": "0"}, "BRINK_SERVER__MAX_BODY_BYTES"),
    ({"BRINK_SLOW_API__MAX_BODY_BYTES": "1e12"}, "BRINK_SLOW_API__MAX_BODY_BYTES"),
    ({"BRINK_CPU__ITERATIONS": "-1"}, "BRINK_CPU__ITERATIONS"),
    # Names that mean nothing: a typo must not fall back to the default silently.
    ({"BRINK_DB__POOLMAX": "5"}, "BRINK_DB__POOLMAX"),
    ({"BRINK_RESILIENCE__SHEDDING__LIMT": "5"}, "BRINK_RESILIENCE__SHEDDING__LIMT"),
    ({"BRINK_ADMINTOKEN": "0123456789abcdef0123"}, "BRINK_ADMINTOKEN"),
    ({"BRINK_SERVER": "8000"}, "BRINK_SERVER"),
]


@pytest.mark.parametrize(("env", "named"), HOSTILE, ids=[" ".join(env) for env, _ in HOSTILE])
def test_each_hostile_setting_is_refused_in_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    message = _refusal()
    assert named in message
    assert "\n" not in message
    assert len(message) < 300, message


def _refusal() -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return str(caught.value)


def test_secrets_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_ADMIN_TOKEN", "hunter2")
    monkeypatch.setenv("BRINK_DB__DSN", "postgresql://brink:s3cret-pw@127.0.0.1:99999/brink")
    message = _refusal()
    assert "BRINK_ADMIN_TOKEN" in message
    assert "BRINK_DB__DSN" in message
    assert "hunter2" not in message
    assert "s3cret-pw" not in message


def test_every_problem_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_DB__POOL_MAX", "0")
    monkeypatch.setenv("BRINK_SERVER__PORT", "0")
    monkeypatch.setenv("BRINK_TYPO", "1")
    message = _refusal()
    for name in ("BRINK_DB__POOL_MAX", "BRINK_SERVER__PORT", "BRINK_TYPO"):
        assert name in message


def _start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [
        ("demo_service", "BRINK_DB__POOL_MAX", "-1"),
        ("demo_service", "BRINK_RESILIENCE__PRESET", "sturdy"),
        ("demo_service.slow_api", "BRINK_SLOW_API__PORT", "70000"),
    ],
)
def test_a_process_with_a_bad_setting_exits_non_zero_with_one_line(
    module: str, variable: str, value: str
) -> None:
    done = _start(module, {variable: value})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
