"""The reports of one ramp, written into its run folder.

:func:`write_reports` writes ``report.json`` (the outcome, for ``brink compare``),
``summary.md`` (fit for ``$GITHUB_STEP_SUMMARY``), ``junit.xml`` (one test case per threshold,
plus "run completed" and, when checked, "ledger holds"), three PNGs (:mod:`loadtests.plots`)
and ``report.html`` (the summary, the probe and the configuration on one self-contained page).
Secrets in the configuration (keys naming a token, secret, password or API key; passwords in
URLs) are written as ``***``. What the Markdown and HTML say is built once, in
:mod:`loadtests.report_content`.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from loadtests.exit_codes import ExitCode
from loadtests.outcome import RampOutcome
from loadtests.plot_kit import DPI
from loadtests.plots import latency_plot, saturation_plot, throughput_plot
from loadtests.report_content import PLOTS, content, title
from loadtests.report_doc import to_html, to_markdown

REDACTED = "***"
_SECRET_KEY = re.compile(r"token|secret|passw(or)?d|api_?key|credential", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+):[^/@\s]+@")
_PLOTTERS: dict[str, Callable[[RampOutcome], Figure]] = {
    "throughput": throughput_plot,
    "latency": latency_plot,
    "saturation": saturation_plot,
}


def _secrets(value: Any, secret: bool = False) -> set[str]:
    """The string values found under secret-looking keys, at any depth."""
    if isinstance(value, Mapping):
        found: set[str] = set()
        for key, item in value.items():
            found |= _secrets(item, secret or bool(_SECRET_KEY.search(str(key))))
        return found
    if isinstance(value, list | tuple):
        return set().union(*(_secrets(item, secret) for item in value))
    return {str(value)} if secret and value not in (None, "") else set()


def _scrub(value: Any, secrets: set[str], secret: bool = False) -> Any:
    if isinstance(value, Mapping):
        return {
            key: _scrub(item, secrets, secret or bool(_SECRET_KEY.search(str(key))))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, secrets, secret) for item in value]
    if secret and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        for text in sorted(secrets, key=len, reverse=True):
            if len(text) >= 4:
                value = value.replace(text, REDACTED)
        return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    return value


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every secret written as ``***``.

    A secret is a value under a key naming a token, secret, password or API key (e.g.
    ``admin_token``, ``settings["BRINK_ADMIN_TOKEN"]``), that value anywhere else in the
    config (a command line quoting it), and the password of a URL (``postgres://u:pw@h``).
    """
    scrubbed: dict[str, Any] = _scrub(config, _secrets(config))
    return scrubbed


def _run_failed(outcome: RampOutcome) -> str | None:
    """Why the "run completed" test case fails, or None when the run went as planned.

    Stopping early on a collapse above the peak (or in ``breakpoint``) is the plan: only a
    failed run (stack, generator, watchdog) or a collapse at or below the peak fails it.
    """
    if outcome.exit_code in (ExitCode.RUN_FAILED, ExitCode.ABORTED_ON_COLLAPSE):
        why = f"; {outcome.aborted}" if outcome.aborted else ""
        return f"exit code {int(outcome.exit_code)} ({outcome.exit_code.name}){why}"
    return None


_FAILURE_TYPES = {
    "brink.ramp": "RunNotCompleted",
    "brink.ledger": "LedgerBroken",
    "brink.thresholds": "ThresholdBreached",
}


def junit_xml(outcome: RampOutcome) -> bytes:
    """JUnit XML: suite "brink ramp", case "run completed", one case per threshold."""
    duration = f"{max(0.0, outcome.finished_at - outcome.started_at):.3f}"
    cases: list[tuple[str, str, str, str | None]] = [
        ("brink.ramp", "run completed", duration, _run_failed(outcome))
    ]
    if outcome.ledger is not None:
        ledger = outcome.ledger
        cases.append(
            ("brink.ledger", "ledger holds", "0", None if ledger.ok else ledger.explanation)
        )
    for result in outcome.thresholds:
        failure = None if result.passed else result.message
        cases.append(("brink.thresholds", str(result.threshold), "0", failure))
    failures = str(sum(1 for case in cases if case[3] is not None))
    counts = {"tests": str(len(cases)), "failures": failures, "errors": "0"}
    root = ET.Element("testsuites", {"name": "brink", **counts, "time": duration})
    started = datetime.fromtimestamp(outcome.started_at, UTC).isoformat(timespec="seconds")
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": "brink ramp", **counts, "skipped": "0", "time": duration, "timestamp": started},
    )
    properties = ET.SubElement(suite, "properties")
    facts = {"verdict": outcome.exit_code.name, **outcome.summary.to_dict()}
    for name, value in facts.items():
        shown = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        ET.SubElement(properties, "property", name=name, value=shown)
    for classname, name, time, failure in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=time)
        if failure is not None:
            kind = _FAILURE_TYPES[classname]
            ET.SubElement(case, "failure", message=failure, type=kind).text = failure
    ET.SubElement(suite, "system-out").text = outcome.tipping.explanation
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_reports(outcome: RampOutcome, run_dir: Path) -> dict[str, Path]:
    """Write every report into ``run_dir`` (created if missing); returns the paths by name.

    Names: ``json``, ``summary``, ``junit``, ``throughput``, ``latency``, ``saturation``,
    ``html``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = redact(outcome.config)
    paths: dict[str, Path] = {}

    def write(name: str, file: str, data: bytes) -> None:
        paths[name] = run_dir / file
        paths[name].write_bytes(data)

    images: dict[str, bytes] = {}
    for name, _caption in PLOTS:
        images[f"{name}.png"] = _png(_PLOTTERS[name](outcome))
        write(name, f"{name}.png", images[f"{name}.png"])
    report = {**outcome.to_dict(), "config": config}
    write("json", "report.json", (json.dumps(report, indent=2, default=str) + "\n").encode())
    write("summary", "summary.md", to_markdown(content(outcome, config)).encode())
    write("junit", "junit.xml", junit_xml(outcome))
    page = to_html(title(config), content(outcome, config, full=True), images)
    write("html", "report.html", page.encode())
    return paths
