"""The ``kflow`` command's errors and exit statuses: every kflow error becomes one line and one of these codes."""

from __future__ import annotations

from typing import Final

from engine import KflowError
from storage import StorageError
from streams._errors import SettingsError, TransportError

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""A command failed (a refused request, an unknown run, a failed ``kflow run``, …)."""
EXIT_USAGE: Final = 2
"""Bad arguments or ``KFLOW_*`` settings."""
EXIT_DIVERGED: Final = 3
"""``kflow replay``: a recorded history does not replay deterministically (``kflow dev status``: a server is
stopped)."""
EXIT_UNREACHABLE: Final = 4
"""Kafka or Cassandra cannot be reached."""
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C."""

EXIT_STATUSES: Final = (
    (EXIT_OK, "success"),
    (EXIT_FAILED, "the command failed, or the run it waited for (kflow run)"),
    (EXIT_USAGE, "bad arguments or KFLOW_* settings"),
    (EXIT_DIVERGED, "replay diverged"),
    (EXIT_UNREACHABLE, "Kafka or Cassandra is unreachable (kflow dev status: a server is stopped)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)
"""Every exit status with its meaning, for ``kflow --help``."""


class CliError(KflowError):
    """A problem the user can act on; printed as one line, exit status 1."""

    retryable = False


class UsageError(CliError):
    """An argument value (or combination) the command cannot use; printed as one line, exit status 2."""


def exit_status(error: KflowError) -> int:
    """The exit status for ``error``: 2 usage, 4 Kafka or Cassandra unreachable, else 1."""
    if isinstance(error, UsageError | SettingsError):
        return EXIT_USAGE
    if isinstance(error, TransportError) or (isinstance(error, StorageError) and error.unreachable):
        return EXIT_UNREACHABLE
    return EXIT_FAILED


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (a multi-line message's lines joined with `` | ``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines) or type(error).__name__
