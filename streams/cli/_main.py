"""Entry point of the ``kflow`` console command: parser assembly and one-line error reporting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from engine import KflowError
from schemas import SchemaError
from storage import StorageError
from streams._settings import Settings
from streams._topics import InternalTopicError
from streams.cli import _compact, _dev, _hooks, _replay, _run, _runs, _schedules, _storage, _topics
from streams.cli._app import AppLoadError
from streams.dev import DevStackError
from streams.ops import OpsError


class CliError(Exception):
    """A problem the user can act on; printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``kflow`` parser; each command group registers its own sub-commands."""
    parser = _Parser(prog="kflow", description="Durable workflows on Kafka: local servers, processors, ops.")
    groups = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    groups.required = True
    for module in (_dev, _topics, _run, _runs, _replay, _compact, _storage, _hooks, _schedules):
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kflow`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        status: int = args.handler(args, settings)
        return status
    except (
        CliError,
        AppLoadError,
        DevStackError,
        StorageError,
        KflowError,
        OpsError,
        SchemaError,
        InternalTopicError,
        ValueError,
    ) as exc:
        print(f"kflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
