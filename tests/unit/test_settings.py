"""Settings: defaults, environment names, and one clear line for every bad value."""

from __future__ import annotations

import pytest

from demo_service.settings import SettingsError, env_name, load_settings


def test_defaults_are_safe_and_small() -> None:
    settings = load_settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.slow_api.host == "127.0.0.1"
    assert settings.db.pool_max == 5
    assert settings.admin_token is None


def test_nested_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_DB__POOL_MAX", "12")
    monkeypatch.setenv("BRINK_SLOW_API__CAPACITY", "7")
    monkeypatch.setenv("BRINK_EXTERNAL__URL", "http://127.0.0.1:9999")
    settings = load_settings()
    assert settings.db.pool_max == 12
    assert settings.slow_api.capacity == 7
    assert str(settings.external.url) == "http://127.0.0.1:9999/"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BRINK_DB__POOL_MAX", "-1"),
        ("BRINK_DB__POOL_MAX", "lots"),
        ("BRINK_DB__ACQUIRE_TIMEOUT_S", "0"),
        ("BRINK_DB__DSN", "mysql://x@127.0.0.1/db"),
        ("BRINK_EXTERNAL__URL", "not a url"),
        ("BRINK_EXTERNAL__READ_TIMEOUT_S", "-3"),
        ("BRINK_SERVER__PORT", "70000"),
        ("BRINK_SLOW_API__ERROR_RATE", "1.5"),
        ("BRINK_SLOW_API__CAPACITY", "0"),
        ("BRINK_CPU__ITERATIONS", "0"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message


def test_pool_min_above_max_names_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_DB__POOL_MIN", "9")
    monkeypatch.setenv("BRINK_DB__POOL_MAX", "3")
    with pytest.raises(
        SettingsError, match=r"BRINK_DB__POOL_MIN \(9\) exceeds BRINK_DB__POOL_MAX \(3\)"
    ):
        load_settings()


def test_a_bad_token_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_ADMIN_TOKEN", "short-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "BRINK_ADMIN_TOKEN" in str(caught.value)
    assert "short-secret" not in str(caught.value)


def test_the_token_never_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRINK_ADMIN_TOKEN", "a-long-enough-secret-token")
    settings = load_settings()
    assert "a-long-enough-secret-token" not in repr(settings)


def test_env_name() -> None:
    assert env_name(("db", "pool_max")) == "BRINK_DB__POOL_MAX"
    assert env_name(("admin_token",)) == "BRINK_ADMIN_TOKEN"
