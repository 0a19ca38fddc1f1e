"""``brink``: the lab's command line. Each subcommand is an ``_add_<name>`` that registers its
parser and a ``cmd_<name>(args) -> int`` that runs it; :func:`main` only dispatches.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeAlias

from loadtests.native.stack import ADMIN_TOKEN_ENV, NativeStack, StackConfig, StackError

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Command = Callable[[argparse.Namespace], int]

_SETTING_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HEALTH_CHECK_INTERVAL_S = 0.5


def port(text: str) -> int:
    """argparse type: a TCP port number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return value


def setting(text: str) -> tuple[str, str]:
    """argparse type: ``KEY=VALUE`` → ``("BRINK_KEY", "VALUE")``; the value is never echoed."""
    key, equals, value = text.partition("=")
    key = key.strip().upper()
    if not equals or not _SETTING_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE such as DB__POOL_MAX=10, got key {key!r}"
        )
    return (key if key.startswith("BRINK_") else "BRINK_" + key), value


# --- brink up ----------------------------------------------------------------------------------


def _add_up(subparsers: Subparsers) -> None:
    defaults = StackConfig()
    parser = subparsers.add_parser(
        "up",
        help="run Postgres, the slow API and the demo service here until Ctrl-C",
        description="Start a private Postgres, the slow API and the demo service on this "
        "machine, print their URLs, and stop them all on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default=defaults.host, help="listen address (%(default)s)")
    for flag, default, what in (
        ("--service-port", defaults.service_port, "demo service"),
        ("--slow-api-port", defaults.slow_api_port, "slow API"),
        ("--pg-port", defaults.pg_port, "private Postgres"),
    ):
        parser.add_argument(
            flag,
            type=port,
            default=default,
            metavar="PORT",
            help=f"port of the {what} (%(default)s)",
        )
    parser.add_argument(
        "--run-dir", type=Path, default=defaults.run_dir, help="logs and admin token (%(default)s)"
    )
    parser.add_argument(
        "--set",
        dest="settings",
        metavar="KEY=VALUE",
        type=setting,
        action="append",
        default=[],
        help="extra setting as BRINK_KEY for both processes, e.g. --set DB__POOL_MAX=10",
    )
    parser.set_defaults(func=cmd_up)


def stack_config(args: argparse.Namespace) -> StackConfig:
    """The :class:`StackConfig` that ``brink up`` arguments describe."""
    return StackConfig(
        host=args.host,
        service_port=args.service_port,
        slow_api_port=args.slow_api_port,
        pg_port=args.pg_port,
        extra_env=dict(args.settings),
        run_dir=args.run_dir.absolute(),
    )


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    _ignore_stop_signals()  # one is enough: let the shutdown finish
    raise _Stop(signal.Signals(signum).name)


def _ignore_stop_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_ready(stack: NativeStack) -> None:
    urls = stack.urls
    rows = [
        ("service", urls["service"]),
        ("metrics", urls["metrics"]),
        ("slow API", urls["slow_api"]),
        ("postgres", urls["postgres"]),
        ("logs", str(stack.config.run_dir)),
    ]
    token = stack.admin_token_file
    rows.append(("admin token", f"in {token}" if token else f"as given in {ADMIN_TOKEN_ENV}"))
    print("brink up: ready")
    for name, value in rows:
        print(f"  {name:<12} {value}")
    print("Ctrl-C stops everything.", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    """Run the native stack until a signal (exit 0) or until one of its parts dies (exit 1)."""
    stack = NativeStack(stack_config(args))
    with _stop_on_signals():
        try:
            stack.start()
            _print_ready(stack)
            while (failure := stack.failure()) is None:
                time.sleep(_HEALTH_CHECK_INTERVAL_S)  # a stop signal interrupts this
            print(f"brink up: {failure}\nbrink up: stopping the rest", file=sys.stderr)
            return 1
        except StackError as exc:
            print(f"brink up: {exc}", file=sys.stderr)
            return 1
        except _Stop as exc:
            print(f"brink up: {exc} received, stopping", file=sys.stderr)
            return 0
        finally:
            _ignore_stop_signals()
            stack.stop()
            print(f"brink up: stopped; logs in {stack.config.run_dir}", file=sys.stderr)


# --- dispatch ----------------------------------------------------------------------------------

_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (_add_up,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brink", description="A live load-testing lab: find where a backend tips over."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``brink`` and ``python -m loadtests``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    command: Command = args.func
    return command(args)
