"""Run listings over the query tables (``runs_by_status``, ``runs_by_workflow``): which runs a page holds.

A listing walks the day buckets from the newest day back to a floor (``days`` before today, or the day of
``since``, never before ``storage._pages.MIN_DAY``), so it costs a bounded number of partition reads: at most
``MAX_DAYS_PER_PAGE`` days a page (a page that stops there is short, maybe empty, and its token goes on with the
next day). Every listing is ordered by ``(started_at, run_id)``
descending; a page token (``storage._pages``) is the last key returned plus the floor and the filters, so the next
page continues exactly after it. ``since`` bounds the listing below: a walk stops at the first key started before it
(each partition is read newest first). ``until`` bounds it above: the walk starts on its day, after the key
``(until, "")``, so only runs started before it are listed (without ``since``, ``days`` back from its day).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from engine.runtime import Clock
from storage._cql import STATUSES, day_bucket, to_ms
from storage._pages import MIN_DAY, PageCursor, check_days, continue_at, day_range, decode_page, encode_page

_DAY = timedelta(days=1)

MAX_DAYS_PER_PAGE = 62
"""Most day buckets one page reads (per partition family): a page that hits it may be short, or empty, and its
token goes on with the next day."""


def _ms(day: date) -> int:
    return round(datetime.combine(day, time(), UTC).timestamp() * 1000)


Key = tuple[int, str]
"""``(started_at, run_id)``: the order of every listing, descending."""


@dataclass(frozen=True, slots=True)
class ListingPage:
    """The run ids of one page (newest first) and the token of the next page (None: this is the last)."""

    run_ids: list[str]
    next_page: str | None


class RunListing:
    """The listing queries of one keyspace (prepared once).

    Raises:
        the driver's errors, while preparing (``RunStore`` wraps them).
    """

    def __init__(self, session: Session, keyspace: str, clock: Clock, days: int) -> None:
        self._session, self._clock, self._days = session, clock, days
        prepare = session.prepare
        ks = keyspace
        page = "AND (started_at, run_id) < (?, ?) "
        by_status = f"SELECT started_at, run_id FROM {ks}.runs_by_status WHERE status = ? AND bucket = ? "
        by_workflow = f"SELECT started_at, run_id FROM {ks}.runs_by_workflow WHERE workflow_name = ? AND bucket = ? "
        filtered = "AND status = ? LIMIT ? ALLOW FILTERING"
        self._by_status = (prepare(by_status + "LIMIT ?"), prepare(by_status + page + "LIMIT ?"))
        self._by_workflow = (prepare(by_workflow + "LIMIT ?"), prepare(by_workflow + page + "LIMIT ?"))
        self._by_workflow_status = (prepare(by_workflow + filtered), prepare(by_workflow + page + filtered))

    def page(
        self,
        status: str | None,
        workflow: str | None,
        since: int | None,
        limit: int,
        token: str | None,
        until: int | None = None,
    ) -> ListingPage:
        """The run ids of the page after ``token`` (the first page without one).

        Raises:
            ValueError: an invalid token, or one of a listing with other filters.
            the driver's errors (``RunStore`` wraps them).
        """
        cursor = decode_page(token, status, workflow, since, until) if token else None
        now_ms = self._clock.now_ms()
        today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
        lowest, highest = _ms(MIN_DAY), now_ms + 86_400_000
        if cursor is not None:
            check_days(cursor, today)
            since, until = cursor.since, cursor.until  # the token's bounds win (an age moves with the clock)
            floor = cursor.floor
        elif since is not None:
            floor = day_bucket(min(max(since, lowest), highest))
        else:  # ``days`` back from today, or from ``until``'s day when that is earlier
            top = today if until is None else min(today, datetime.fromtimestamp(max(until, 0) / 1000, tz=UTC).date())
            floor = max(top - timedelta(days=self._days), MIN_DAY).isoformat()
        # Start a day ahead of our "today": runs stamped by a host whose clock runs ahead are listed too.
        newest = cursor.bucket if cursor else (today + _DAY).isoformat()
        after = (cursor.started_at, cursor.run_id) if cursor else None
        if cursor is None and until is not None:  # (until, "") sorts after every key started before until
            bound = min(max(until, lowest), highest)
            newest, after = min(newest, day_bucket(bound)), (bound, "")
        days = day_range(newest, floor, MAX_DAYS_PER_PAGE + 1)
        read, more_days = days[:MAX_DAYS_PER_PAGE], len(days) > MAX_DAYS_PER_PAGE
        keys = list(itertools.islice(self._keys(status, workflow, since, read, after, limit + 1), limit + 1))
        next_page = None
        if len(keys) > limit:
            started_at, run_id = keys[limit - 1]
            next_page = encode_page(
                PageCursor(day_bucket(started_at), started_at, run_id, floor, status, workflow, since, until)
            )
        elif more_days:  # the day cap was hit: the next page goes on with the next day
            next_page = encode_page(continue_at(days[MAX_DAYS_PER_PAGE], floor, status, workflow, since, until))
        return ListingPage([run_id for _, run_id in keys[:limit]], next_page)

    def _keys(
        self,
        status: str | None,
        workflow: str | None,
        since: int | None,
        days: list[str],
        after: Key | None,
        cap: int,
    ) -> Iterator[Key]:
        """Listing keys newest first; a run listed twice (mid status move) appears once."""
        if workflow is not None and status is not None:
            return self._walk(self._by_workflow_status, (workflow,), (status,), since, days, after, cap)
        if workflow is not None:
            return self._walk(self._by_workflow, (workflow,), (), since, days, after, cap)
        if status is not None:
            return self._walk(self._by_status, (status,), (), since, days, after, cap)
        sources = [self._walk(self._by_status, (one,), (), since, days, after, cap) for one in STATUSES]
        merged = heapq.merge(*sources, reverse=True)
        return (key for key, _ in itertools.groupby(merged))

    def _walk(
        self,
        queries: tuple[PreparedStatement, PreparedStatement],
        partition: tuple[object, ...],
        filters: tuple[object, ...],
        since: int | None,
        days: Sequence[str],
        after: Key | None,
        cap: int,
    ) -> Iterator[Key]:
        """Keys of one partition family, day by day from ``days[0]``, after ``after``, at most ``cap``, none
        started before ``since``."""
        first, following = queries
        yielded = 0
        for index, bucket in enumerate(days):
            if index == 0 and after is not None:
                statement, params = following, (*partition, bucket, *after, *filters, cap - yielded)
            else:
                statement, params = first, (*partition, bucket, *filters, cap - yielded)
            for row in self._session.execute(statement, params):
                started_at = to_ms(row.started_at)
                assert started_at is not None  # a clustering column is never null
                if since is not None and started_at < since:
                    return  # newest first: everything after this is older still
                yield started_at, row.run_id
                yielded += 1
            if yielded >= cap:
                return
