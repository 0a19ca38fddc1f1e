"""Reads brink's Markdown docs the way a reader does, and checks them against the code.

Shared by tests/unit/test_docs_honest.py and tests/unit/test_workflows.py: code blocks and
inline commands, tables, and the checkers that say what is wrong with one command or row.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import shlex
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from demo_service.faults import FaultValues
from demo_service.resilience.presets import PRESETS, ResilienceConfig
from demo_service.settings import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    DatabaseSettings,
    ExternalSettings,
    PgExporterSettings,
    ResilienceSettings,
    ServerSettings,
    Settings,
    SlowApiSettings,
)
from demo_service.slow_api import Knobs
from loadtests.cli import build_parser
from loadtests.native.stack import StackConfig

ROOT = Path(__file__).parents[1]

# --- where things are documented -----------------------------------------------------------------

README = ROOT / "README.md"
"""The front page: what brink is, the quick start, "What runs where", a tour, links to docs/."""
README_MAX_BYTES = 12_000
"""``wc -c README.md`` stays at or under this: details go to docs/ pages."""
FIRST_SCREEN_LINES = 40
QUICK_START = ("./scripts/demo", "./scripts/test")
"""The commands a newcomer sees on the README's first screen."""
PORTS_PAGE = README
"""Where the "What runs where" table (every part, its address, what starts it) lives."""
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
"""Where the table of every ``BRINK_*`` setting and its default lives."""

# --- reading the docs ------------------------------------------------------------------------


def doc_files() -> list[Path]:
    """The Markdown a reader follows: the README, docs/*.md (whatever is there now), and the
    READMEs of benchmarks/ and dashboards/."""
    docs = sorted((ROOT / "docs").glob("*.md"))
    return [README, *docs, ROOT / "benchmarks/README.md", ROOT / "dashboards/README.md"]


@dataclass(frozen=True)
class Command:
    """One command as a shell would split it, and where the docs say it."""

    where: str
    argv: tuple[str, ...]
    inline: bool = False
    """Inline code: ``brink compare`` alone names the subcommand, it is not a call."""

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


FENCE = re.compile(r"^ *```([\w-]*)[^\n]*\n(.*?)^ *```", re.M | re.S)
_SHELL_FENCES = {"sh", "bash", "shell"}
"""Blocks read as shell. In ``console`` blocks only ``$ `` lines are commands (the rest is
output); unlabelled blocks (file trees, output) count only lines that start a command, like
inline code."""
_YAML_FENCES = {"yaml", "yml"}
# Inline code may wrap within a paragraph, never across an empty line.
_INLINE = re.compile(r"`((?:(?!\n[ \t]*\n)[^`])+)`")
_PLACEHOLDER = re.compile(r"<([A-Za-z][\w -]*)>")
_ELISIONS = {"...", "…"}
_PREFIXES = {"exec", "sudo", "time", "env", "nohup"}
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def shell_commands(script: str) -> Iterator[list[str]]:
    """Simple commands of a shell snippet: continuations joined, comments, ``VAR=x`` prefixes
    and redirections dropped, split at ``;``, ``&&``, ``||``, ``|`` and ``&``.

    ``<name>`` placeholders become ``NAME`` and ``...`` elisions go, so an example written for
    people still parses when it is a real command. A line a shell could not split raises
    ValueError.
    """
    script = _PLACEHOLDER.sub(lambda m: m.group(1).upper().replace(" ", "_"), script)
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        command: list[str] = []
        skip_next = False
        for token in tokens:
            if skip_next:
                skip_next = False
            elif token and set(token) <= set("<>&|;()"):
                if "<" in token or ">" in token:  # a redirection: drop it and its target
                    skip_next = True
                    if command and command[-1].isdigit():
                        command.pop()  # 2>/dev/null
                    continue
                yield from _simple(command)
                command = []
            elif token not in _ELISIONS:
                command.append(token)
        yield from _simple(command)


def _simple(tokens: list[str]) -> Iterator[list[str]]:
    while tokens and (tokens[0] in _PREFIXES or _ASSIGNMENT.match(tokens[0])):
        tokens = tokens[1:]
    if tokens:
        yield tokens


def _is_python(word: str) -> bool:
    return re.fullmatch(r"(?:\S*/)?python(?:3(?:\.\d+)?)?", word) is not None


def is_script(word: str) -> bool:
    return re.fullmatch(r"(?:\./)?scripts/[\w.-]+", word) is not None


def starts_a_command(argv: Sequence[str]) -> bool:
    """Whether inline code is a command (``brink up``) rather than a name (``brink``)."""
    head = argv[0]
    if head in {"brink", ".venv/bin/brink", "locust", ".venv/bin/locust"}:
        return len(argv) > 1
    if _is_python(head):
        return list(argv[1:2]) == ["-m"]
    return is_script(head)


def _yaml_runs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from _yaml_runs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _yaml_runs(item)


@dataclass(frozen=True)
class DocCommands:
    commands: list[Command]
    problems: list[str]
    """Snippets that could not be read at all (a shell syntax error, bad YAML)."""


def doc_commands(path: Path) -> DocCommands:
    """Every command of one Markdown file: shell and YAML ``run:`` blocks, and inline code."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT).as_posix()
    commands: list[Command] = []
    problems: list[str] = []

    def add(script: str, where: str, inline: bool) -> None:
        try:
            for argv in shell_commands(script):
                if not inline or starts_a_command(argv):
                    commands.append(Command(where, tuple(argv), inline))
        except ValueError as exc:
            if not inline:  # prose in backticks need not be shell
                problems.append(f"{where}: a shell cannot split this: {exc}")

    for fence in FENCE.finditer(text):
        lang, body = fence.group(1).lower(), fence.group(2)
        where = f"{name}:{line_of(text, fence.start())}"
        if lang in _SHELL_FENCES:
            add(body, where, inline=False)
        elif lang == "console":
            prompts = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
            add("\n".join(prompts), where, inline=False)
        elif not lang:
            for line in body.splitlines():
                add(line, where, inline=True)
        elif lang in _YAML_FENCES:
            try:
                runs = list(_yaml_runs(yaml.safe_load(body)))
            except yaml.YAMLError as exc:
                problems.append(f"{where}: not valid YAML: {exc}")
                continue
            for run in runs:
                add(run, where, inline=False)
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in _INLINE.finditer(prose):
        add(span.group(1).replace("\n", " "), f"{name}:{line_of(prose, span.start())}", True)
    return DocCommands(commands, problems)


def all_doc_commands() -> DocCommands:
    commands: list[Command] = []
    problems: list[str] = []
    for path in doc_files():
        found = doc_commands(path)
        commands += found.commands
        problems += found.problems
    return DocCommands(commands, problems)


def _cells(row: str) -> list[str]:
    """A Markdown table row's cells; a ``|`` inside inline code does not split."""
    cells, current, in_code = [], "", False
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += char
    cells.append(current.strip())
    return cells


@dataclass(frozen=True)
class Table:
    where: str
    header: list[str]
    rows: list[tuple[str, list[str]]]
    """(``file:line``, cells) per body row."""


def tables(path: Path) -> Iterator[Table]:
    """Every Markdown table of a file (outside code blocks)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text(encoding="utf-8"))
    name = path.relative_to(ROOT).as_posix()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        is_table = lines[i].lstrip().startswith("|") and i + 1 < len(lines)
        if is_table and re.fullmatch(r"\s*\|?[\s:|-]+\|?\s*", lines[i + 1]):
            header = [c.strip("*_ ").lower() for c in _cells(lines[i])]
            start, i = i, i + 2
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append((f"{name}:{i + 1}", _cells(lines[i])))
                i += 1
            yield Table(f"{name}:{start + 1}", header, rows)
        else:
            i += 1


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- links -------------------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
"""The target of ``[text](target)`` and ``![alt](target "title")``."""


def _prose(text: str) -> str:
    """Text outside code blocks and inline code, line numbers kept."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return _INLINE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without Markdown, lower case, punctuation
    dropped (``_`` and ``-`` kept), each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[`*]|(?<!\w)_|_(?!\w)", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The ``#anchors`` of a Markdown text's headings (a repeated one gets ``-1``, ``-2``...)."""
    found: set[str] = set()
    for heading in _HEADING.finditer(FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)):
        slug = base = github_slug(heading.group(2))
        n = 0
        while slug in found:
            n += 1
            slug = f"{base}-{n}"
        found.add(slug)
    return found


def link_problems(path: Path, text: str | None = None) -> Iterator[str]:
    """Relative links of one Markdown file (``text``: its content, else read) that lead
    nowhere: no such file, or no heading for the ``#anchor`` in a Markdown file. Links with a
    scheme (``https:``, ``mailto:``) are the web's business."""
    text = path.read_text(encoding="utf-8") if text is None else text
    prose = _prose(text)
    name = path.relative_to(ROOT).as_posix()
    for link in _LINK.finditer(prose):
        target = link.group(1)
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            continue
        where = f"{name}:{line_of(prose, link.start())}"
        here = path.resolve()
        to = (here.parent / parts.path).resolve() if parts.path else here
        if to != here and not to.exists():
            yield f"{where}: {target}: no such file"
        elif parts.fragment and to.suffix == ".md":
            headings = anchors(text if to == here else to.read_text(encoding="utf-8"))
            if parts.fragment not in headings:
                yield f"{where}: {target}: no heading #{parts.fragment} in {to.name}"


# --- checking a command ------------------------------------------------------------------------


def _last_line(text: str, fallback: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else fallback


def brink_problem(args: Sequence[str]) -> str | None:
    """Why ``brink ARGS`` would not parse (argparse's message), or None; ``--help`` is fine.

    ``--set KEY=VALUE`` must also name a real setting: argparse only checks its shape.
    """
    err = io.StringIO()
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            parsed = build_parser().parse_args(list(args))
    except SystemExit as exc:
        if exc.code in (0, None):
            return None
        return _last_line(err.getvalue(), f"argparse exited with {exc.code}")
    for key, _ in getattr(parsed, "settings", []):
        if isinstance(found := setting_at(key), str):
            return found
    return None


def brink_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after ``brink`` (or ``python -m loadtests``); None if not brink."""
    if argv[0] in {"brink", ".venv/bin/brink"} or argv[0].endswith("/bin/brink"):
        return list(argv[1:])
    if _is_python(argv[0]) and list(argv[1:3]) == ["-m", "loadtests"]:
        return list(argv[3:])
    return None


def _script_forwards_to(script: Path) -> str | None:
    """The brink subcommand a script hands its arguments to (``exec .venv/bin/brink up "$@"``)."""
    match = re.search(r'\bbrink\s+(\w+)\s+"\$@"', script.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def script_problem(argv: Sequence[str]) -> str | None:
    script = ROOT / argv[0].removeprefix("./")
    if not script.is_file():
        return f"{argv[0]} does not exist"
    if not script.stat().st_mode & 0o111:
        return f"{argv[0]} is not executable"
    subcommand = _script_forwards_to(script)
    if subcommand is not None and len(argv) > 1:
        problem = brink_problem([subcommand, *argv[1:]])
        return f"as brink {subcommand}: {problem}" if problem else None
    return None


_REPO_PATH = re.compile(
    r"(?:\./)?((?:loadtests|demo_service|dashboards|benchmarks|tests|docs|scripts|docker|\.github)"
    r"/[^\s*?{}$<>]*)"
)


def path_problems(argv: Sequence[str]) -> Iterator[str]:
    """Repository paths a command names must exist; an option's value (maybe an output file)
    may be new, but its folder must exist."""
    for i, token in enumerate(argv):
        option, _, value = token.partition("=") if token.startswith("--") else ("", "", token)
        match = _REPO_PATH.fullmatch(value)
        if match is None:
            continue
        path = ROOT / match.group(1)
        an_option_value = bool(option) or (i > 0 and argv[i - 1].startswith("-"))
        if not path.exists() and not (an_option_value and path.parent.is_dir()):
            yield f"{match.group(1)} does not exist"


def locust_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after ``locust`` (or ``python -m locust``); None if not Locust."""
    if Path(argv[0]).name == "locust":
        return list(argv[1:])
    if _is_python(argv[0]) and list(argv[1:3]) == ["-m", "locust"]:
        return list(argv[3:])
    return None


def python_module(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``python -m MODULE ARGS`` → (MODULE, ARGS); None for anything else."""
    if _is_python(argv[0]) and list(argv[1:2]) == ["-m"] and len(argv) > 2:
        return argv[2], list(argv[3:])
    return None


def is_ours(module: str) -> bool:
    return (ROOT / module.split(".")[0]).is_dir()


def module_problem(module: str, args: Sequence[str]) -> str | None:
    """In-process part of a ``python -m`` check: the module exists; ours take arguments only if
    they parse a command line (the parse itself runs in a child: :func:`parse_modules`)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return f"no module {module}"
    if not args or not is_ours(module):
        return None
    if spec.submodule_search_locations:  # a package runs its __main__
        spec = importlib.util.find_spec(module + ".__main__")
    source = Path(spec.origin) if spec and spec.origin else None
    if source is None or "parse_args" not in source.read_text(encoding="utf-8"):
        return f"{module} takes no command-line arguments"
    return None


_PARSE_ONLY = textwrap.dedent(
    """
    import argparse, contextlib, importlib.util, io, json, runpy, sys

    class Parsed(BaseException):
        "Raised right after a successful parse: nothing the module would do next runs."

    def attempt(call):
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                call()
            return "returned without parsing its command line"
        except Parsed:
            return None
        except SystemExit as exc:
            said = [l for l in err.getvalue().splitlines() if "error" in l] or [f"exit {exc.code}"]
            return None if exc.code in (0, None) else said[-1]

    real = argparse.ArgumentParser.parse_args
    def parse_only(self, args=None, namespace=None):
        real(self, args, namespace)
        raise Parsed
    argparse.ArgumentParser.parse_args = parse_only

    def run_module(module, args):
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)

    loaded = set()
    def parse_locust(argv):
        import locust.argument_parser as arguments
        locustfile = argv[argv.index("-f") + 1]
        if locustfile not in loaded:  # a locustfile adds its options once
            spec = importlib.util.spec_from_file_location("locustfile", locustfile)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            loaded.add(locustfile)
        arguments.get_parser(default_config_files=[]).parse_args(argv)  # configargparse's
        raise Parsed

    modules, locusts = json.loads(sys.argv[1])
    print(json.dumps([
        [attempt(lambda: run_module(m, a)) for m, a in modules],
        [attempt(lambda: parse_locust(argv)) for argv in locusts],
    ]))
    """
)


@dataclass(frozen=True)
class ChildParse:
    """Per call, why it did not parse (None: it did)."""

    modules: list[str | None]
    locust: list[str | None]


def parse_in_child(
    modules: Sequence[tuple[str, list[str]]], locust: Sequence[Sequence[str]] = ()
) -> ChildParse:
    """Parse ``python -m MODULE ARGS`` (each stopped right after its parse) and Locust command
    lines (Locust's options and the locustfile's) in one child.

    A child because these modules patch things on import (gevent) and ``runpy`` runs them as
    ``__main__``; one child for all keeps it to one interpreter start.
    """
    calls = [[[m, list(a)] for m, a in modules], [list(argv) for argv in locust]]
    child = subprocess.run(
        [sys.executable, "-c", _PARSE_ONLY, json.dumps(calls)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    module_problems, locust_problems = json.loads(child.stdout.strip().splitlines()[-1])
    return ChildParse(module_problems, locust_problems)


# --- settings and knobs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    field: FieldInfo
    default: object
    group: bool


def setting_at(name: str) -> Setting | str:
    """The settings field ``BRINK_A__B`` names, with its default; else why there is none."""
    parts = name.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER.lower())
    model: type[BaseModel] = Settings
    value: object = None
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            return f"{name}: no setting {'.'.join(parts[: depth + 1])}"
        field = model.model_fields[part]
        value = field.default if depth == 0 else getattr(value, part)
        annotation = field.annotation
        is_group = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if depth == len(parts) - 1:
            return Setting(field, value, is_group)
        if not is_group:
            return f"{name}: {'.'.join(parts[: depth + 1])} is not a group of settings"
        assert isinstance(annotation, type)
        assert issubclass(annotation, BaseModel)
        model = annotation
    raise AssertionError("unreachable")


def expand_names(cell: str) -> list[str]:
    """``BRINK_DB__POOL_MIN`` / ``__POOL_MAX`` → both full names (same group as the first)."""
    names: list[str] = []
    for span in code_spans(cell):
        if span.startswith(ENV_PREFIX):
            names.append(span)
        elif span.startswith(ENV_NESTED_DELIMITER) and names:
            group = names[0].rpartition(ENV_NESTED_DELIMITER)[0]
            names.append(group + span)
    return names


def _doc_value(text: str) -> object:
    """A default as the docs write it: none, true/false, a number (with 1,000 separators), text."""
    text = text.strip().strip("`")
    if text.lower() == "none":
        return None
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    try:
        return float(text.replace(",", "").replace("_", ""))
    except ValueError:
        return text


def _same(documented: str, actual: object) -> bool:
    """A value as the docs write it against the code's."""
    want = _doc_value(documented)
    if hasattr(actual, "get_secret_value"):
        actual = "<secret>"
    if want is None:
        return actual is None or actual == "none"
    if isinstance(want, bool) or isinstance(actual, bool):
        return want is actual
    if isinstance(want, float):
        return isinstance(actual, int | float) and math.isclose(want, actual, rel_tol=1e-9)
    return str(actual).rstrip("/") == str(want).rstrip("/")  # URLs gain a trailing /


def default_problem(name: str, documented: str, actual: object) -> str | None:
    """Whether a documented default is the code's; "preset" defaults are the preset's to say."""
    if "preset" in documented or _same(documented, actual):
        return None
    return f"{name}: the docs say {documented!r}, the default is {actual!r}"


def _bounds(field: FieldInfo) -> tuple[float | None, bool, float | None, bool]:
    """(low, strict, high, strict) of a field's ``ge``/``gt`` and ``le``/``lt``."""

    def bound(name: str) -> float | None:
        return next((getattr(m, name) for m in field.metadata if hasattr(m, name)), None)

    ge, gt = bound("ge"), bound("gt")
    le, lt = bound("le"), bound("lt")
    low = (ge if ge is not None else gt), ge is None and gt is not None
    high = (le if le is not None else lt), le is None and lt is not None
    return (*low, *high)


@dataclass(frozen=True)
class KnobSource:
    """Where a group of fault knobs lives: the names, fields with bounds, the start values."""

    names: tuple[str, ...]
    fields: dict[str, FieldInfo]
    starts: Callable[[str], list[object]]
    """A knob's start value; per preset (fragile, resilient, adaptive) for resilience knobs."""


def _resilience_fields() -> dict[str, FieldInfo]:
    fields = {"preset": ResilienceSettings.model_fields["preset"]}
    for group, info in ResilienceConfig.model_fields.items():
        model = info.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        fields |= {f"{group}.{knob}": field for knob, field in model.model_fields.items()}
    return fields


def _preset_values(name: str) -> list[object]:
    if name == "preset":
        return [ResilienceSettings.model_fields["preset"].default]
    group, _, knob = name.partition(".")
    return [getattr(getattr(config, group), knob) for config in PRESETS.values()]


def knob_sources() -> dict[str, KnobSource]:
    """The groups of live knobs, by the prefix the docs give them (``service.pool_size``)."""
    service = dict(FaultValues.model_fields)
    slow_api = dict(SlowApiSettings.model_fields)
    resilience = _resilience_fields()
    return {
        "service": KnobSource(tuple(service), service, lambda n: [service[n].default]),
        "slow_api": KnobSource(
            tuple(Knobs.model_fields), slow_api, lambda n: [slow_api[n].default]
        ),
        "resilience": KnobSource(tuple(resilience), resilience, _preset_values),
    }


def knob_of(name: str, target: str | None) -> tuple[str, str] | None:
    """(group, knob) of a fault-table row: from a prefix (``slow_api.capacity``) or from its
    target column (``service: orders``, ``slow API``)."""
    group, dot, knob = name.partition(".")
    if dot and group in knob_sources():
        return group, knob
    words = (target or "").lower()
    if words.startswith("service"):
        return "service", name
    if words.startswith("slow api"):
        return "slow_api", name
    return None


_RANGE = re.compile(r"\s*(>\s*)?(-?[\d.,]+)\s*(?:\u2013|-|to)\s*(<\s*)?(-?[\d.,]+)")
"""``0-10`` (hyphen or en dash), ``1 to 1,000``, ``> 0 to < 1`` (strict bounds)."""


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _choices(field: FieldInfo) -> set[str]:
    if field.annotation is bool:
        return {"true", "false"}
    return {str(arg) for arg in typing.get_args(field.annotation)}


def knob_row_problems(group: str, name: str, value: str, start: str | None = None) -> Iterator[str]:
    """One fault-table row against its knob: it exists; its range or choices, and its start
    value(s) when given, are the code's."""
    source = knob_sources()[group]
    if name not in source.fields or name not in source.names:
        yield f"{group}.{name}: no such knob; there are {', '.join(source.names)}"
        return
    field = source.fields[name]
    if span := _RANGE.match(value):
        strict_low, low, strict_high, high = span.groups()
        documented = (_number(low), bool(strict_low), _number(high), bool(strict_high))
        if documented != _bounds(field):
            yield f"{name}: the docs say {value!r}, the bounds are {_bounds(field)}"
    elif choices := code_spans(value):
        if set(choices) != _choices(field):
            yield f"{name}: the docs list {sorted(choices)}, it takes {sorted(_choices(field))}"
    else:
        yield f"{name}: no range or choices in {value!r}"
    start = start or next(iter(re.findall(r"start:\s*([^)]*)\)", value)), None)
    if start is None or ENV_PREFIX in start:
        return  # none given, or a setting (checked with the settings)
    documented_starts = [part.strip() for part in start.split(" / ")]
    actual = source.starts(name)
    if len(documented_starts) == 1:
        documented_starts *= len(actual)
    if len(documented_starts) != len(actual) or not all(
        _same(d, a) for d, a in zip(documented_starts, actual, strict=True)
    ):
        yield f"{name}: the docs say it starts at {start!r}, it starts at {actual}"


# --- ports -------------------------------------------------------------------------------------


def compose_ports() -> dict[str, set[int]]:
    """Host ports each Compose service publishes."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    published: dict[str, set[int]] = {}
    for name, service in compose["services"].items():
        for entry in service.get("ports", []):
            parts = str(entry).split(":")
            published.setdefault(name, set()).add(int(parts[-2]))
    return published


@dataclass(frozen=True)
class PortSource:
    """A part of the lab, how its row in the ports table reads, and where its port is set."""

    row: re.Pattern[str]
    defaults: dict[str, int]
    compose_service: str | None


def port_sources() -> dict[str, PortSource]:
    """Every part with a port; checked in this order, so the first matching row pattern wins."""
    up = build_parser().parse_args(["up"])
    stack = StackConfig()

    def url_port(url: str) -> int:
        port = urlsplit(url).port
        assert port is not None, url
        return port

    def row(pattern: str) -> re.Pattern[str]:
        return re.compile(pattern, re.I)

    return {
        "Grafana": PortSource(row(r"grafana"), {}, "grafana"),
        "Postgres exporter": PortSource(
            row(r"postgres exporter"),
            {"PgExporterSettings.port": PgExporterSettings().port, "brink up": up.pg_exporter_port},
            "postgres-exporter",
        ),
        "load generator metrics": PortSource(
            row(r"load generator metrics"),
            {
                "StackConfig.loadgen_metrics_port": stack.loadgen_metrics_port,
                "brink up": up.loadgen_metrics_port,
            },
            "locust-master",
        ),
        "Locust web UI": PortSource(
            row(r"locust web ui"), {"brink up": up.locust_port}, "locust-master"
        ),
        "Prometheus": PortSource(
            row(r"^prometheus"), {"brink up": up.prometheus_port}, "prometheus"
        ),
        "slow API": PortSource(
            row(r"slow .*api"),
            {
                "SlowApiSettings.port": SlowApiSettings().port,
                "ExternalSettings.url": url_port(str(ExternalSettings().url)),
                "StackConfig.slow_api_port": stack.slow_api_port,
                "brink up": up.slow_api_port,
            },
            "slow-api",
        ),
        "Postgres": PortSource(
            row(r"postgres"),
            {
                "DatabaseSettings.dsn": url_port(DatabaseSettings().dsn),
                "StackConfig.pg_port": stack.pg_port,
                "brink up": up.pg_port,
            },
            "postgres",
        ),
        "demo service": PortSource(
            row(r"demo service|its prometheus metrics"),
            {
                "ServerSettings.port": ServerSettings().port,
                "StackConfig.service_port": stack.service_port,
                "brink up": up.service_port,
            },
            "demo-service",
        ),
    }
