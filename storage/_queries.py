"""RunStore: reads the materialized history — one run, its events, and run listings newest first
(``storage._listing``) or by a prefix of the run id (``storage._prefix``) — and applies ``kflow compact``'s
retention to it (finished runs to compact, purging a run's events, marking it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from cassandra.query import BoundStatement

from engine.runtime import HISTORY_EVENT_TYPES, Clock, HistoryEvent, SystemClock
from schemas import RecordCodec, SchemaError
from storage._cql import DRIVER_ERRORS, RUNNING, STATUSES, to_ms
from storage._errors import StorageError
from storage._listing import RunListing
from storage._prefix import ID_PREFIX_LENGTH, PrefixListing
from storage._session import CassandraConnection

_RUN_COLUMNS = (
    "run_id",
    "workflow_name",
    "status",
    "args",
    "result",
    "error_type",
    "error_message",
    "started_at",
    "finished_at",
    "updated_at",
    "parent_run_id",
    "parent_position",
    "continued_from",
    "next_run_id",
    "idempotency_key",
    "last_seq",
    "compacted_at",
    "history_purged",
    "children",
)
_TIME_COLUMNS = frozenset({"started_at", "finished_at", "updated_at", "compacted_at"})
_FINISHED = frozenset(STATUSES) - {RUNNING}
_SCAN_COLUMNS = ("run_id", "workflow_name", "status", "finished_at", "next_run_id", "compacted_at", "history_purged")


@dataclass(frozen=True, slots=True)
class RunRow:
    """A ``runs`` row; times are epoch milliseconds, ``args``/``result`` JSON text.

    A run is known once its ``WorkflowStarted`` is materialized, so ``workflow_name`` and ``status`` are
    always set. For a cancelled run ``error_message`` holds the cancel reason (if one was given). The
    other fields are None when unknown (``finished_at`` of a running run, a run without a parent, …).
    ``compacted_at`` is when ``kflow compact`` dropped the run's hot state (None: never), and
    ``history_purged`` whether it also deleted the run's ``events`` rows. ``children``: the run ids of the
    children it started, in the order of their positions (migration 003; empty for runs materialized before it,
    until ``kflow replay --rebuild``).
    """

    run_id: str
    workflow_name: str
    status: str
    args: str | None = None
    result: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    started_at: int | None = None
    finished_at: int | None = None
    updated_at: int | None = None
    parent_run_id: str | None = None
    parent_position: int | None = None
    continued_from: str | None = None
    next_run_id: str | None = None
    idempotency_key: str | None = None
    last_seq: int | None = None
    compacted_at: int | None = None
    history_purged: bool = False
    children: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A finished run as the compaction scan sees it (``RunStore.compactable_runs``); times in epoch ms.

    ``status`` is terminal (``completed``, ``failed``, ``cancelled``, ``continued_as_new``); ``next_run_id``
    is the successor of a ``continued_as_new`` run; ``compacted_at`` is None until ``kflow compact`` dropped
    the run's hot state; ``history_purged`` tells whether its ``events`` rows were deleted.
    """

    run_id: str
    workflow_name: str
    status: str
    finished_at: int
    next_run_id: str | None = None
    compacted_at: int | None = None
    history_purged: bool = False


@dataclass(frozen=True, slots=True)
class HistorySize:
    """A run's materialized history: ``events`` rows holding ``bytes`` of event data (sum of ``len(data)``)."""

    events: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a listing: ``runs`` newest first, ``next_page`` the token for the next (None: last)."""

    runs: list[RunRow]
    next_page: str | None


class RunStore:
    """Queries over the materialized runs and events (synchronous: for the CLI and the client).

    Args:
        conn: an open connection.
        keyspace: the migrated keyspace.
        records: codec decoding ``events.data`` (default: JSON payloads; pass one with the secret to read
            cloudpickle payloads).
        days: how many days before today a listing walks back (runs started earlier are not listed).
        clock: source of "today" (UTC) and of the write timestamps of purges and compaction marks.

    Raises:
        StorageError: the statements cannot be prepared (unreachable, keyspace not migrated).
    """

    def __init__(
        self,
        conn: CassandraConnection,
        keyspace: str,
        records: RecordCodec | None = None,
        *,
        days: int = 30,
        clock: Clock | None = None,
    ) -> None:
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        self._session = conn.session
        self._write_consistency: int | None = getattr(conn, "write_consistency", None)  # None: the session's
        self._records = records or RecordCodec()
        self._days = days
        self._clock = clock or SystemClock()
        try:
            self._prepare(keyspace)
        except DRIVER_ERRORS as exc:
            raise StorageError(
                f"cannot prepare the run queries in {keyspace!r} (is it migrated? kflow storage migrate): {exc!r}"
            ) from exc

    def _prepare(self, ks: str) -> None:
        prepare = self._session.prepare
        self._get_run = prepare(f"SELECT {', '.join(_RUN_COLUMNS)} FROM {ks}.runs WHERE run_id = ?")
        self._get_events = prepare(f"SELECT data FROM {ks}.events WHERE run_id = ?")
        self._listing = RunListing(self._session, ks, self._clock, self._days)
        self._prefix = PrefixListing(self._session, ks)
        self._scan_runs = prepare(f"SELECT {', '.join(_SCAN_COLUMNS)} FROM {ks}.runs")
        # Invariant: purges and marks carry a wall-clock timestamp (µs since the epoch), far above the
        # materializer's `USING TIMESTAMP <seq>`: re-materializing a purged run's events (redelivery, a
        # rebuild) writes cells older than the partition tombstone, so they stay deleted (docs/storage.md).
        self._delete_events = prepare(f"DELETE FROM {ks}.events USING TIMESTAMP ? WHERE run_id = ?")
        self._mark_compacted = prepare(
            f"UPDATE {ks}.runs USING TIMESTAMP ? SET compacted_at = ?, history_purged = ? WHERE run_id = ?"
        )
        # Reads use the session's (read) consistency; the two writes carry the write consistency.
        if self._write_consistency is not None:
            self._delete_events.consistency_level = self._write_consistency
            self._mark_compacted.consistency_level = self._write_consistency

    def get_run(self, run_id: str) -> RunRow | None:
        """The run's row, or None for an unknown run id.

        Raises:
            StorageError: Cassandra unreachable or refusing the query.
        """
        try:
            row = self._session.execute(self._get_run, (run_id,)).one()
        except DRIVER_ERRORS as exc:
            raise StorageError(f"reading run {run_id} failed: {exc!r}") from exc
        return None if row is None else _run_row(row)

    def events(self, run_id: str) -> list[HistoryEvent]:
        """The run's history events ordered by seq (empty for an unknown run id).

        Raises:
            StorageError: Cassandra unreachable or refusing the query.
            SchemaError: a stored event cannot be decoded (e.g. a cloudpickle payload without the secret).
        """
        try:
            blobs = [row.data for row in self._session.execute(self._get_events, (run_id,))]
        except DRIVER_ERRORS as exc:
            raise StorageError(f"reading the events of run {run_id} failed: {exc!r}") from exc
        events: list[HistoryEvent] = []
        for blob in blobs:
            event = self._records.decode(blob)
            if not isinstance(event, HISTORY_EVENT_TYPES):
                raise SchemaError(f"run {run_id}: a {type(event).__name__} is stored as a history event")
            events.append(cast(HistoryEvent, event))
        return events

    def list_runs(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        page: str | None = None,
        *,
        since: int | None = None,
        until: int | None = None,
        run_id_prefix: str | None = None,
    ) -> RunPage:
        """Runs newest first (by ``started_at``), filtered by status and/or workflow name.

        Args:
            status: one of ``running``, ``completed``, ``failed``, ``cancelled``, ``continued_as_new``.
            workflow: a workflow name.
            limit: most runs on the page.
            page: the ``next_page`` of the previous page of the same listing.
            since: epoch ms: only runs started at or after it; the walk goes back to its day (instead of
                ``days`` before today).
            until: epoch ms: only runs started before it.
            run_id_prefix: only runs whose id starts with it, listed in run id order from ``runs_by_id_prefix``
                (one partition; the other filters are applied to the rows read, and a page reads at most
                ``storage._prefix.SCAN_BUDGET`` ids, so it may hold fewer than ``limit`` runs and still have a next
                page). Shorter than ``ID_PREFIX_LENGTH`` characters, or when the range holds nothing: the run whose
                id it is, if any (a run materialized before migration 004 is found by its whole id).

        Raises:
            ValueError: an unknown status, ``limit`` < 1, an invalid page token.
            StorageError: Cassandra unreachable or refusing a query.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r} (known: {', '.join(STATUSES)})")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        try:
            if run_id_prefix is not None:
                return self._by_prefix(run_id_prefix, (status, workflow, since, until), limit, page)
            listed = self._listing.page(status, workflow, since, limit, page, until)
            runs = self._fetch_runs(listed.run_ids)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"listing runs failed: {exc!r}") from exc
        return RunPage(runs=runs, next_page=listed.next_page)

    def _by_prefix(
        self, prefix: str, filters: tuple[str | None, str | None, int | None, int | None], limit: int, page: str | None
    ) -> RunPage:
        status, workflow, since, until = filters

        def keep(row: RunRow) -> bool:
            started = row.started_at or 0
            return (
                (status is None or row.status == status)
                and (workflow is None or row.workflow_name == workflow)
                and (since is None or started >= since)
                and (until is None or started < until)
            )

        if len(prefix) >= ID_PREFIX_LENGTH:
            runs, token = self._prefix.page(prefix, filters, limit, page, self._fetch_runs, keep)
            if runs or page or token:
                return RunPage(runs, token)
        # A short prefix, or nothing listed: the run whose id it is (materialized before migration 004, say).
        exact = self._fetch_runs([prefix])
        return RunPage([row for row in exact if keep(row)], None)

    def compactable_runs(
        self, before_ms: int, *, purge_history: bool = False, page_size: int = 1000
    ) -> Iterator[FinishedRun]:
        """Finished runs with ``finished_at`` < ``before_ms`` that ``kflow compact`` still has work for.

        That is every such run not compacted yet, and with ``purge_history`` also the compacted ones whose
        history was kept. The scan reads the whole ``runs`` table in token order, ``page_size`` rows per
        request, and filters here (no ``ALLOW FILTERING``): its cost grows with the number of runs, which
        is acceptable for an ops batch, and each request stays bounded. Rows are fetched lazily as the
        iterator advances.

        Raises:
            ValueError: ``page_size`` < 1.
            StorageError: (while iterating) Cassandra unreachable or refusing a page.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        statement = self._scan_runs.bind(())
        statement.fetch_size = page_size
        return self._scan(statement, before_ms, purge_history)

    def _scan(self, statement: BoundStatement, before_ms: int, purge_history: bool) -> Iterator[FinishedRun]:
        try:
            for row in self._session.execute(statement):
                finished_at = to_ms(row.finished_at)
                if (
                    row.status not in _FINISHED
                    or row.workflow_name is None
                    or finished_at is None
                    or finished_at >= before_ms
                ):
                    continue
                compacted_at, purged = to_ms(row.compacted_at), bool(row.history_purged)
                if compacted_at is None or (purge_history and not purged):
                    yield FinishedRun(
                        row.run_id, row.workflow_name, row.status, finished_at, row.next_run_id, compacted_at, purged
                    )
        except DRIVER_ERRORS as exc:
            raise StorageError(f"scanning the runs for compaction failed: {exc!r}") from exc

    def history_size(self, run_id: str, *, page_size: int = 1000) -> HistorySize:
        """How many ``events`` rows the run has and their bytes (read page by page, nothing kept).

        Raises:
            StorageError: Cassandra unreachable or refusing the query.
        """
        statement = self._get_events.bind((run_id,))
        statement.fetch_size = page_size
        events = size = 0
        try:
            for row in self._session.execute(statement):
                events, size = events + 1, size + len(row.data or b"")
        except DRIVER_ERRORS as exc:
            raise StorageError(f"reading the events of run {run_id} failed: {exc!r}") from exc
        return HistorySize(events, size)

    def purge_history(self, run_id: str) -> HistorySize:
        """Delete the run's ``events`` rows; returns what they held (read just before the delete).

        The ``runs`` row stays (see ``mark_compacted``). The delete is one partition tombstone stamped with
        the wall clock, so the materializer (whose writes are stamped with the event's seq) cannot bring
        the rows back, even when it writes the same events again, until Cassandra drops the tombstone
        (``gc_grace_seconds``). Purging again finds nothing and returns zeros.

        Raises:
            StorageError: Cassandra unreachable or refusing a request.
        """
        size = self.history_size(run_id)
        try:
            self._session.execute(self._delete_events, (self._clock.now_ms() * 1000, run_id))
        except DRIVER_ERRORS as exc:
            raise StorageError(f"purging the events of run {run_id} failed: {exc!r}") from exc
        return size

    def mark_compacted(self, run_id: str, *, compacted_at: int, history_purged: bool) -> None:
        """Record on the run's ``runs`` row that its hot state was dropped at ``compacted_at`` (epoch ms)
        and whether its history was purged; ``get_run`` and ``kflow runs show`` report it.

        Raises:
            StorageError: Cassandra unreachable or refusing the write.
        """
        params = (
            self._clock.now_ms() * 1000,
            datetime.fromtimestamp(compacted_at / 1000, tz=UTC),
            history_purged,
            run_id,
        )
        try:
            self._session.execute(self._mark_compacted, params)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"marking run {run_id} compacted failed: {exc!r}") from exc

    def _fetch_runs(self, run_ids: list[str]) -> list[RunRow]:
        """The ``runs`` rows of ``run_ids``, read concurrently, in the given order (missing ones skipped)."""
        futures = [self._session.execute_async(self._get_run, (run_id,)) for run_id in run_ids]
        rows = [_run_row(row) for row in (future.result().one() for future in futures) if row is not None]
        return [row for row in rows if row is not None]


def _run_row(row: Any) -> RunRow | None:
    """The row as a RunRow; None for a partial row (events of a run whose start is not materialized)."""
    if row.workflow_name is None or row.status is None:
        return None
    values: dict[str, Any] = {}
    for column in _RUN_COLUMNS:
        value = getattr(row, column)
        values[column] = to_ms(value) if column in _TIME_COLUMNS else value
    values["history_purged"] = bool(values["history_purged"])  # null until compacted
    children = values["children"] or {}  # a map (position -> run id), null when empty
    values["children"] = tuple(children[position] for position in sorted(children))
    return RunRow(**values)
