"""The command-line options that attach a run to a running stack, the same in every command
that drives load (``brink ramp``, ``brink scenario``): ``--stack`` and ``--stack-dir``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from loadtests.attach.running_stack import Kind
from loadtests.native.stack import StackConfig

STACK_KINDS: tuple[Kind, ...] = ("native", "compose")
COMPOSE_DIR = Path(__file__).resolve().parents[2]
"""This checkout: where ``docker-compose.yml`` and ``.env`` are."""


@dataclass(frozen=True)
class StackChoice:
    """Which running stack to attach to (``--stack``, ``--stack-dir``)."""

    kind: Kind
    directory: Path
    """native: ``brink up``'s run dir; compose: the folder of ``docker-compose.yml``."""


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """``--stack`` and ``--stack-dir``, the same in every command that drives load."""
    parser.add_argument(
        "--stack",
        choices=STACK_KINDS,
        help="drive a running stack instead of starting a private one: native = the one "
        "`brink up` runs on this machine, compose = the Compose lab on its published ports; "
        "its knobs are set live for the run and put back after it",
    )
    parser.add_argument(
        "--stack-dir",
        type=Path,
        metavar="DIR",
        help=f"with --stack native: brink up's --run-dir (default {StackConfig().run_dir});"
        " with --stack compose: the folder of docker-compose.yml and .env (this checkout)",
    )


def stack_choice(args: argparse.Namespace) -> StackChoice | None:
    """The stack ``--stack``/``--stack-dir`` ask for; None: a private stack."""
    if args.stack is None:
        if args.stack_dir is not None:
            raise ValueError("--stack-dir needs --stack native or --stack compose")
        return None
    if getattr(args, "target", None):
        raise ValueError("--target and --stack both name the service: choose one")
    if getattr(args, "non_durable_postgres", False):
        raise ValueError(
            "--non-durable-postgres is for a private stack; a running stack keeps its own"
            " (brink up --non-durable-postgres)"
        )
    default = StackConfig().run_dir if args.stack == "native" else COMPOSE_DIR
    return StackChoice(args.stack, (args.stack_dir or default).absolute())
