"""Query parameters of the UI's pages and API (docs/ui.md): parsed and checked, or refused with ``BadRequest``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from engine import KflowError, RunStatus
from streams.ops import OpsError, parse_since

MAX_LIMIT: Final = 200
DEFAULT_LIMIT: Final = 50


class BadRequest(KflowError):
    """A parameter the UI cannot use (HTTP 400); the message says which and why."""

    retryable = False


class NotFound(KflowError):
    """No such run, schedule or dead letter (HTTP 404)."""

    retryable = False


@dataclass(frozen=True, slots=True)
class RunFilters:
    """The runs listing's filters, as given (``since``/``until`` also as epoch ms)."""

    status: str | None = None
    workflow: str | None = None
    since: str | None = None
    until: str | None = None
    prefix: str | None = None
    limit: int = DEFAULT_LIMIT
    page: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def query(self, **changes: str | None) -> dict[str, str]:
        """The query string of these filters (empty ones left out), with ``changes``."""
        fields = {
            "status": self.status,
            "workflow": self.workflow,
            "since": self.since,
            "until": self.until,
            "prefix": self.prefix,
            "limit": None if self.limit == DEFAULT_LIMIT else str(self.limit),
            "page": self.page,
            **changes,
        }
        return {name: value for name, value in fields.items() if value}


def run_filters(query: Mapping[str, str], now_ms: int) -> RunFilters:
    """The runs listing's filters from ``query`` (``status``, ``workflow``, ``since``, ``until``, ``prefix``,
    ``limit``, ``page``; empty values count as absent).

    Raises:
        BadRequest: an unknown status, a time that is neither an age nor an ISO date/time, a bad limit.
    """
    given = {name: value.strip() for name, value in query.items() if value.strip()}
    status = given.get("status")
    if status is not None and status not in {s.value for s in RunStatus}:
        raise BadRequest(f"status {status!r}: expected one of {', '.join(s.value for s in RunStatus)}")
    return RunFilters(
        status=status,
        workflow=given.get("workflow"),
        since=given.get("since"),
        until=given.get("until"),
        prefix=given.get("prefix"),
        limit=limit_of(given.get("limit")),
        page=given.get("page"),
        since_ms=instant(given, "since", now_ms),
        until_ms=instant(given, "until", now_ms),
    )


def limit_of(text: str | None, default: int = DEFAULT_LIMIT) -> int:
    """``limit``: 1 to ``MAX_LIMIT``.

    Raises:
        BadRequest: anything else.
    """
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit {text!r}: expected a whole number from 1 to {MAX_LIMIT}")
    return value


def instant(given: Mapping[str, str], name: str, now_ms: int) -> int | None:
    """Parameter ``name`` as epoch ms: an age back from now (``1h``, ``7d``) or an ISO date/time (naive = UTC).

    Raises:
        BadRequest: neither.
    """
    text = given.get(name)
    if text is None:
        return None
    try:
        return parse_since(text, now_ms)
    except OpsError:
        raise BadRequest(
            f"{name} {text!r}: expected an age such as 30m, 12h or 7d, or an ISO date/time such as 2025-05-01T12:00"
        ) from None
