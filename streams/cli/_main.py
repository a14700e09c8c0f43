"""Entry point of the ``kflow`` console command: parser assembly and one-line error reporting."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from engine import KflowError
from streams._settings import ENVIRONMENT, Settings
from streams.cli import (
    _compact,
    _dev,
    _dlq,
    _hooks,
    _replay,
    _run,
    _runs,
    _schedules,
    _storage,
    _topics,
    _ui,
    _workflows,
)
from streams.cli._errors import EXIT_INTERRUPTED, EXIT_STATUSES, CliError, exit_status, one_line

__all__ = ["CliError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def kflow_version() -> str:
    """The installed kflow distribution's version (``unknown`` when it is not installed)."""
    try:
        return version("kflow")
    except PackageNotFoundError:
        return "unknown"


def epilog() -> str:
    """The end of ``kflow --help``: every ``KFLOW_*`` variable with its default, and the exit statuses."""
    width = max(len(var.name) for var in ENVIRONMENT)
    lines = ["environment (default in brackets; the same settings in a TOML file: --config FILE):"]
    lines += [f"  {var.name.ljust(width)}  {var.meaning} [{var.default}]" for var in ENVIRONMENT]
    lines += ["", "exit status:"] + [f"  {code:<3}  {meaning}" for code, meaning in EXIT_STATUSES]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The full ``kflow`` parser; each command group registers its own sub-commands."""
    parser = _Parser(
        prog="kflow",
        description="Durable workflows on Kafka: local servers, processors, ops.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kflow {kflow_version()}")
    parser.add_argument("--debug", action="store_true", help="on an error, show its traceback (before the command)")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of settings, given before the command (it wins over $KFLOW_CONFIG; a variable that is set "
        "wins over the file; docs/api.md, Configuration)",
    )
    groups = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    groups.required = True
    for module in (_dev, _topics, _run, _runs, _workflows, _replay, _compact, _storage, _hooks, _schedules, _dlq, _ui):
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kflow`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    A kflow error is one line on stderr (``kflow: error: …``) and an exit status: 1 a command or run failed,
    2 bad arguments or settings, 3 replay diverged, 4 Kafka or Cassandra unreachable; 130 on Ctrl-C.
    ``--debug`` raises it instead, with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # the client libraries' connection warnings: a failure is reported as one line
        for name in ("aiokafka", "cassandra"):
            _quiet(logging.getLogger(name))
    try:
        settings = Settings.from_env(config=args.config)
        status: int = args.handler(args, settings)
        return status
    except KflowError as exc:
        if args.debug:
            raise
        print(f"kflow: error: {one_line(exc)}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        if args.debug:
            raise
        return EXIT_INTERRUPTED


def _quiet(logger: logging.Logger) -> None:
    """Keep ``logger``'s records off stderr when nothing else handles them (no last-resort output)."""
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
