"""The docs tell the truth: their commands parse, their tables match the code.

People copy commands out of the README and trust its tables; a renamed flag or a changed
default makes the docs lie without any other test noticing. So this reads the Markdown the way
a reader does and checks it against the code:

- every command in a shell code block, and every inline code span that starts with one
  (``brink ...``, ``python -m ...``, ``./scripts/...``, ``locust ...``), parses against the real
  command line: brink's own argparse parser in-process, ``python -m`` modules of this repository
  in a child that stops right after parsing, Locust with brink's locustfile in a child; the
  scripts exist, and those that hand their arguments to ``brink SUB`` are parsed as that;
  repository paths they name exist; ``--set KEY=VALUE`` names a real setting;
- every ``BRINK_*`` name anywhere in the docs is a setting, and in the settings tables the
  shorthand rows (``BRINK_DB__POOL_MIN`` / ``__POOL_MAX``) expand to real settings whose defaults
  are the ones listed;
- the fault tables list every knob of the service (``FaultValues``) and the slow API
  (``Knobs``) and nothing else, with their bounds, choices and start values;
- every port of the README's "What runs where" table is the default everywhere it is set:
  settings, ``StackConfig``, ``brink up``'s flags and the Compose file's published ports;
- every relative link leads to a file that exists, and its ``#anchor`` to one of its headings;
- the README stays a page read in one sitting (at most ``README_MAX_BYTES``), with both
  quick-start commands on its first screen.

No network and no servers: the only children are the parse-only ones (a few seconds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from loadtests.exit_codes import ExitCode
from loadtests.summary import METRICS
from loadtests.thresholds import Threshold, parse_thresholds_toml
from tests.docs_reader import (
    FENCE,
    FIRST_SCREEN_LINES,
    PORTS_PAGE,
    QUICK_START,
    README,
    README_MAX_BYTES,
    ROOT,
    SETTINGS_PAGE,
    Command,
    all_doc_commands,
    brink_args,
    brink_problem,
    code_spans,
    compose_ports,
    default_problem,
    doc_files,
    expand_names,
    github_slug,
    is_ours,
    is_script,
    knob_of,
    knob_row_problems,
    knob_sources,
    line_of,
    link_problems,
    locust_args,
    module_problem,
    parse_in_child,
    path_problems,
    port_sources,
    python_module,
    script_problem,
    setting_at,
    shell_commands,
    tables,
)


def _kinds(commands: Sequence[Command]) -> dict[str, list[Command]]:
    kinds: dict[str, list[Command]] = {"brink": [], "module": [], "script": [], "locust": []}
    for command in commands:
        argv = command.argv
        if brink_args(argv) is not None:
            kinds["brink"].append(command)
        elif locust_args(argv) is not None:
            kinds["locust"].append(command)
        elif python_module(argv) is not None:
            kinds["module"].append(command)
        elif is_script(argv[0]):
            kinds["script"].append(command)
    return kinds


def test_the_docs_can_be_read_and_name_every_kind_of_command() -> None:
    """Guards the reader itself: if it found nothing, every check below would pass vacuously."""
    found = all_doc_commands()
    assert not found.problems, "\n".join(found.problems)
    kinds = _kinds(found.commands)
    assert {name: len(c) >= 1 for name, c in kinds.items()} == dict.fromkeys(kinds, True), kinds
    assert len(kinds["brink"]) >= 10


def test_brink_commands_parse() -> None:
    problems = []
    for command in _kinds(all_doc_commands().commands)["brink"]:
        args = brink_args(command.argv)
        assert args is not None
        if command.inline and len(args) == 1:
            args.append("--help")  # `brink compare` in prose names the subcommand
        if problem := brink_problem(args):
            problems.append(f"{command}\n    {problem}")
    assert not problems, "\n".join(problems)


def test_scripts_exist_and_what_they_pass_on_parses() -> None:
    problems = []
    for command in _kinds(all_doc_commands().commands)["script"]:
        if problem := script_problem(command.argv):
            problems.append(f"{command}\n    {problem}")
    assert not problems, "\n".join(problems)


def test_python_modules_and_locust_commands_parse() -> None:
    kinds = _kinds(all_doc_commands().commands)
    problems, to_parse = [], []
    for command in kinds["module"]:
        called = python_module(command.argv)
        assert called is not None
        module, args = called
        if problem := module_problem(module, args):
            problems.append(f"{command}\n    {problem}")
        elif args and is_ours(module):
            to_parse.append((command, (module, args)))
    locusts = [(command, locust_args(command.argv) or []) for command in kinds["locust"]]
    problems += [
        f"{c}: a Locust command without -f LOCUSTFILE" for c, a in locusts if "-f" not in a
    ]
    parsed = parse_in_child(
        [call for _, call in to_parse], [argv for _, argv in locusts if "-f" in argv]
    )
    checked = [c for c, _ in to_parse] + [c for c, a in locusts if "-f" in a]
    for command, problem in zip(checked, parsed.modules + parsed.locust, strict=True):
        if problem:
            problems.append(f"{command}\n    {problem}")
    assert not problems, "\n".join(problems)


def test_repository_paths_in_commands_exist() -> None:
    problems = [
        f"{command}\n    {problem}"
        for command in all_doc_commands().commands
        for problem in path_problems(command.argv)
    ]
    assert not problems, "\n".join(problems)


def test_every_brink_setting_the_docs_name_exists() -> None:
    problems = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\bBRINK_[A-Z0-9_]*[A-Z0-9]\b(?![_*])", text):
            found = setting_at(match.group(0))
            if isinstance(found, str):
                where = f"{path.relative_to(ROOT)}:{line_of(text, match.start())}"
                problems.append(f"{where}: {found}")
    assert not problems, "\n".join(problems)


def test_settings_tables_name_real_settings_with_their_defaults() -> None:
    problems, rows, on_the_settings_page = [], 0, 0
    for path in doc_files():
        for table in tables(path):
            if table.header[:2] != ["setting", "default"]:
                continue
            if path == SETTINGS_PAGE:
                on_the_settings_page += len(table.rows)
            for where, cells in table.rows:
                names = expand_names(cells[0])
                defaults = [d.strip() for d in cells[1].split(" / ")]
                if not names:
                    problems.append(f"{where}: no BRINK_* name in {cells[0]!r}")
                    continue
                if len(defaults) not in (1, len(names)):
                    problems.append(f"{where}: {len(names)} settings but defaults {cells[1]!r}")
                    continue
                for name, documented in zip(names, defaults * len(names), strict=False):
                    found = setting_at(name)
                    if isinstance(found, str):
                        problems.append(f"{where}: {found}")
                    elif found.group:
                        problems.append(f"{where}: {name} is a group, not a setting")
                    elif problem := default_problem(name, documented, found.default):
                        problems.append(f"{where}: {problem}")
                    rows += 1
    assert not problems, "\n".join(problems)
    # The table of every setting; a reader that lost it must not pass.
    assert on_the_settings_page >= 40, f"{SETTINGS_PAGE.name} has lost its settings table"
    assert rows >= on_the_settings_page


def _column(header: list[str], *starts: str) -> int | None:
    return next((i for i, h in enumerate(header) if h.startswith(starts)), None)


def test_fault_tables_list_every_knob_with_its_bounds() -> None:
    """Every table whose first column is "knob": each row a real knob with its bounds or
    choices and start values; together they list every service and slow-API knob."""
    problems, listed, rows = [], set(), 0
    for path in doc_files():
        for table in tables(path):
            if table.header[:1] != ["knob"]:
                continue
            target_at = _column(table.header, "target")
            value_at = _column(table.header, "value")
            start_at = _column(table.header, "start")
            if value_at is None:
                problems.append(f"{table.where}: a knob table without a value column")
                continue
            for where, cells in table.rows:
                spans = code_spans(cells[0])
                target = cells[target_at] if target_at is not None else None
                found = knob_of(spans[0], target) if spans else None
                if found is None:
                    problems.append(f"{where}: which knob is {cells[0]!r}? (teach knob_of)")
                    continue
                listed.add(found)
                start = cells[start_at] if start_at is not None else None
                problems += [
                    f"{where}: {p}" for p in knob_row_problems(*found, cells[value_at], start)
                ]
                rows += 1
    every = {
        (group, name)
        for group, source in knob_sources().items()
        if group != "resilience"  # the settings table lists those
        for name in source.names
    }
    if missing := sorted(every - listed):
        problems.append(f"fault knobs in no docs table: {missing}")
    assert not problems, "\n".join(problems)
    assert rows >= len(every)


def test_threshold_metrics_and_examples_are_real() -> None:
    """Metric tables list exactly the metrics a threshold can name; TOML examples and inline
    ``metric>=value`` examples parse."""
    problems, tables_seen = [], 0
    for path in doc_files():
        name = path.relative_to(ROOT).as_posix()
        for table in tables(path):
            listed = [span for _, cells in table.rows for span in code_spans(cells[0])]
            if table.header[:1] != ["metric"] or not set(listed) & set(METRICS):
                continue  # a table of other metrics (Prometheus series, say)
            tables_seen += 1
            if unknown := sorted(set(listed) - set(METRICS)):
                problems.append(f"{table.where}: no such threshold metric: {unknown}")
            if missing := [m for m in METRICS if m not in listed]:
                problems.append(f"{table.where}: metrics missing from the table: {missing}")
        text = path.read_text(encoding="utf-8")
        for fence in FENCE.finditer(text):
            if fence.group(1).lower() == "toml" and "thresholds" in fence.group(2):
                try:
                    parse_thresholds_toml(fence.group(2))
                except ValueError as exc:
                    problems.append(f"{name}:{line_of(text, fence.start())}: {exc}")
        for span in re.finditer(r"`(([a-z_0-9]+)\s*(?:<=|>=|==|<|>)\s*([^`\s]+))`", text):
            example, metric, value = span.groups()
            try:
                if value.isalpha():  # `knee_rps >= X`: a placeholder, the metric must be real
                    example = f"{metric} >= 0"
                Threshold.parse(example)
            except ValueError as exc:
                problems.append(f"{name}:{line_of(text, span.start())}: {exc}")
    assert not problems, "\n".join(problems)
    assert tables_seen >= 1


def test_exit_code_tables_are_the_exit_codes() -> None:
    problems, seen = [], 0
    for path in doc_files():
        for table in tables(path):
            if table.header[:2] != ["exit code", "meaning"]:
                continue
            seen += 1
            documented = {int(cells[0]) for _, cells in table.rows}
            if documented != {int(code) for code in ExitCode}:
                problems.append(f"{table.where}: codes {sorted(documented)}, not {list(ExitCode)}")
    assert not problems, "\n".join(problems)
    assert seen >= 2  # docs/ramp.md's and docs/ci.md's


def test_ports_in_what_runs_where_are_the_defaults() -> None:
    sources = port_sources()
    published = compose_ports()
    problems, seen = [], set()
    table = next(t for t in tables(PORTS_PAGE) if t.header[:2] == ["what", "default address"])
    for where, cells in table.rows:
        port = re.search(r"127\.0\.0\.1:(\d+)", cells[1])
        if port is None:
            problems.append(f"{where}: no 127.0.0.1:PORT in {cells[1]!r}")
            continue
        documented = int(port.group(1))
        part = next((name for name, s in sources.items() if s.row.search(cells[0])), None)
        if part is None:
            problems.append(f"{where}: which part is {cells[0]!r}? (teach port_sources)")
            continue
        seen.add(part)
        source = sources[part]
        for origin, default in source.defaults.items():
            if default != documented:
                problems.append(f"{where}: {part} on {documented}, but {origin} says {default}")
        compose = source.compose_service
        if compose is not None and documented not in published.get(compose, set()):
            problems.append(f"{where}: Compose's {compose} does not publish {documented}")
    missing = sorted(set(sources) - seen)
    if missing:
        problems.append(f"parts with a port but no row in 'What runs where': {missing}")
    assert not problems, "\n".join(problems)


def test_relative_links_lead_to_files_and_headings_that_exist() -> None:
    problems = [problem for path in doc_files() for problem in link_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_readme_is_short_and_starts_with_the_quick_start() -> None:
    """One sitting: details live in docs/; ``./scripts/demo`` and ``./scripts/test`` are shell
    commands on the first screen."""
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))  # as wc -c counts
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move details to docs/"
    first_screen = "\n".join(text.splitlines()[:FIRST_SCREEN_LINES])
    shown = {
        tuple(argv)
        for fence in FENCE.finditer(first_screen)
        if fence.group(1).lower() in {"sh", "bash", "shell"}
        for argv in shell_commands(fence.group(2))
    }
    missing = [command for command in QUICK_START if (command,) not in shown]
    assert not missing, f"not on the README's first {FIRST_SCREEN_LINES} lines: {missing}"


def test_the_reader_catches_drift() -> None:
    """The checks above fail on what a stale doc would say (fake flags, knobs, settings)."""
    assert brink_problem(["ramp", "--no-such-flag"])
    assert brink_problem(["ramp", "--threshold", "knee_rps>>1"])
    assert brink_problem(["up", "--set", "DB__NO_SUCH_SETTING=1"])
    assert brink_problem(["ramp", "--profile", "breakpoint"]) is None
    assert list(shell_commands("a 1 && FOO=x b 2 | c >> out; d \\\n  3 # note")) == [
        ["a", "1"],
        ["b", "2"],
        ["c"],
        ["d", "3"],
    ]
    assert expand_names("`BRINK_DB__POOL_MIN` / `__POOL_MAX`") == [
        "BRINK_DB__POOL_MIN",
        "BRINK_DB__POOL_MAX",
    ]
    assert isinstance(setting_at("BRINK_DB__POOL_SIZE"), str)
    assert default_problem("BRINK_DB__POOL_MAX", "6", 5)
    assert list(knob_row_problems("service", "no_such_knob", "0-10 s"))
    assert list(knob_row_problems("service", "db_latency_s", "0-20 s"))
    assert list(knob_row_problems("service", "db_latency_s", "0-10 s (start: 1)"))
    assert not list(knob_row_problems("service", "db_latency_s", "0-10 s (start: 0)"))
    assert list(knob_row_problems("resilience", "retry.policy", "`none` / `naive`"))
    assert list(knob_row_problems("resilience", "breaker.window", "1 to 10,000", "10"))
    switch, starts = "`true` / `false`", "false / true / true"
    assert not list(knob_row_problems("resilience", "breaker.enabled", switch, starts))
    assert not list(knob_row_problems("resilience", "adaptive.backoff_ratio", "> 0 to < 1"))
    assert list(path_problems(["cat", "docs/no-such-file.md"]))
    assert github_slug("`brink ramp`: where does it tip, and why?") == (
        "brink-ramp-where-does-it-tip-and-why"
    )
    assert github_slug("On the room's stack (`--stack`)") == "on-the-rooms-stack---stack"
    page = ROOT / "docs" / "a-page.md"
    links = (
        "# A page\n[ok](faults.md#knobs) [here](#a-page) [web](https://example.org/x.md)\n"
        "`[in code](nowhere.md)` [gone](no-such-page.md) [no heading](faults.md#no-such)\n"
        "[self](#no-such-heading) ![picture](img/no-such.png)\n"
    )
    assert [p.split(": ", 1)[1] for p in link_problems(page, links)] == [
        "no-such-page.md: no such file",
        "faults.md#no-such: no heading #no-such in faults.md",
        "#no-such-heading: no heading #no-such-heading in a-page.md",
        "img/no-such.png: no such file",
    ]
    assert module_problem("benchmarks.no_such_module", []) is not None
    parsed = parse_in_child(
        [("benchmarks.backend", ["--no-such-flag"])],
        [["-f", "loadtests/locustfiles/brink.py", "--load-profile", "no-such-profile"]],
    )
    assert parsed.modules[0]
    assert parsed.locust[0]
