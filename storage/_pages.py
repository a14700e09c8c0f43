"""Page tokens of the run listings: where a page stopped, encoded as an opaque URL-safe string.

A token is the last ``(started_at, run_id)`` a page returned (its day bucket included) plus the walk's
floor and the listing's filters (status, workflow, ``since``, ``until``), so the next page continues exactly after
it and a token is refused by a listing with other filters. ``since`` and ``until`` are the exception: a listing given
an age (``7d``) parses it against the clock on every request, so a token only needs the same bounds to be present,
and the token's own values win (the pages of one listing keep the bounds of its first page).

A token's day bucket and floor lie between ``MIN_DAY`` and a day after its listing's today (``check_days``): a forged
token cannot make a page walk millions of days.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from storage._cql import day_bucket

_DAY = timedelta(days=1)
_TOKEN_VERSION = 1

MIN_DAY = date(2000, 1, 1)
"""The oldest day bucket a listing reads: nothing is walked before it (and no token may point before it)."""


@dataclass(frozen=True, slots=True)
class PageCursor:
    """What a page token holds: where the previous page stopped, the walk's floor, and its filters."""

    bucket: str
    started_at: int
    run_id: str
    floor: str
    status: str | None
    workflow: str | None
    since: int | None = None  # epoch ms: only runs started at or after it (None: no bound)
    until: int | None = None  # epoch ms: only runs started before it (None: no bound)


def encode_page(cursor: PageCursor) -> str:
    """The opaque, URL-safe token of ``cursor``."""
    fields = {
        "v": _TOKEN_VERSION,
        "b": cursor.bucket,
        "t": cursor.started_at,
        "r": cursor.run_id,
        "f": cursor.floor,
        "s": cursor.status,
        "w": cursor.workflow,
    }
    if cursor.since is not None:  # absent otherwise: the tokens of listings without it stay as they were
        fields["n"] = cursor.since
    if cursor.until is not None:
        fields["u"] = cursor.until
    raw = json.dumps(fields, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page(
    token: str, status: str | None, workflow: str | None, since: int | None = None, until: int | None = None
) -> PageCursor:
    """The cursor in ``token``, checked against the filters of the listing it continues.

    Raises:
        ValueError: not a token of this store, or one issued for other filters.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fields = json.loads(raw)
        cursor = PageCursor(
            bucket=str(fields["b"]),
            started_at=int(fields["t"]),
            run_id=str(fields["r"]),
            floor=str(fields["f"]),
            status=fields["s"],
            workflow=fields["w"],
            since=None if fields.get("n") is None else int(fields["n"]),
            until=None if fields.get("u") is None else int(fields["u"]),
        )
        # The bucket is the last key's day, or (run id "") the day before the key: a page that stopped at its day
        # cap continues with the whole of that day (``continue_at``).
        key_day = day_bucket(cursor.started_at - 1 if cursor.run_id == "" else cursor.started_at)
        valid = fields["v"] == _TOKEN_VERSION and cursor.bucket == key_day
        date.fromisoformat(cursor.floor)
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, OverflowError):
        raise ValueError(f"invalid page token {token[:40]!r}") from None
    if not valid:
        raise ValueError(f"invalid page token {token[:40]!r}")
    given = (status, workflow, since is None, until is None)
    if (cursor.status, cursor.workflow, cursor.since is None, cursor.until is None) != given:
        raise ValueError(
            f"page token of a listing with status={cursor.status!r} workflow={cursor.workflow!r} "
            f"since={cursor.since!r} until={cursor.until!r}, not status={status!r} workflow={workflow!r} "
            f"since={since!r} until={until!r}"
        )
    return cursor


def continue_at(
    bucket: str, floor: str, status: str | None, workflow: str | None, since: int | None, until: int | None
) -> PageCursor:
    """The cursor of a page that continues with the whole of day ``bucket`` (the walk stopped at its day cap)."""
    start = datetime.combine(date.fromisoformat(bucket) + _DAY, time(), UTC)
    return PageCursor(bucket, round(start.timestamp() * 1000), "", floor, status, workflow, since, until)


def check_days(cursor: PageCursor, today: date) -> None:
    """Refuse a token whose bucket or floor lies before ``MIN_DAY`` or after the day after ``today``.

    Raises:
        ValueError: such a token (a forged one: no listing issues it).
    """
    newest = today + _DAY
    for day in (cursor.bucket, cursor.floor):
        if not MIN_DAY <= date.fromisoformat(day) <= newest:
            raise ValueError(f"invalid page token: day {day} is not between {MIN_DAY} and {newest}")


def day_range(newest: str, floor: str, most: int | None = None) -> list[str]:
    """Day buckets from ``newest`` back to ``floor``, both included (empty when floor is newer), at most ``most``."""
    day, last = date.fromisoformat(newest), max(date.fromisoformat(floor), MIN_DAY)
    days: list[str] = []
    while day >= last and (most is None or len(days) < most):
        days.append(day.isoformat())
        day -= _DAY
    return days
