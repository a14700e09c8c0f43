"""HistoryWriter: writes history events into Cassandra as deltas — the event row, and the run's changes.

Each event becomes its ``events`` row; a ``WorkflowStarted`` creates the run's rows (``runs``,
``runs_by_status``, ``runs_by_workflow``, ``runs_by_id_prefix``); a ``ChildWorkflowStarted`` adds the child to the
run's ``children``; a terminal event sets the outcome and moves the run from the ``running`` partition of
``runs_by_status`` to its final status; every run touched by a batch gets its ``last_seq``/``updated_at``. Nothing
reads or rewrites a whole history (docs/notes.md #8).

Invariant: every mutation made for an event is written ``USING TIMESTAMP <seq of that event>``. Within a
run, a later event therefore wins over an earlier one whatever order the writes arrive in, and writing an
event again rewrites identical cells with identical timestamps. So redelivery, duplicates, overlapping
batches, retries of half-applied batches and replays from the beginning all converge on the same rows:
the rows are a function of the *set* of events written, not of their order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from engine import RunStatus
from engine.runtime import (
    ChildWorkflowStarted,
    HistoryEvent,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    status_of,
)
from schemas import RecordCodec
from storage._cql import (
    DRIVER_ERRORS,
    RUNNING,
    Write,
    bridge,
    day_bucket,
    group_writes,
    json_text,
    pack_groups,
    to_ms,
)
from storage._errors import StorageError
from storage._prefix import id_prefix
from storage._session import CassandraConnection

log = logging.getLogger(__name__)


def _unset(value: object) -> object:
    # Unset, not null: binding null would write a tombstone for every absent optional field.
    return UNSET_VALUE if value is None else value


class HistoryWriter:
    """Materializes history events into the tables of ``docs/storage.md``, idempotently.

    Args:
        conn: an open connection (its session runs the prepared statements).
        keyspace: the migrated keyspace.
        records: codec used to encode events whose original bytes are not given (default: JSON payloads).
        concurrency: most requests in flight at once.
        cache_size: runs whose ``workflow_name``/``started_at`` are remembered between batches (a
            terminal event needs them for the query-table keys; on a miss the ``runs`` row is read).

    Raises:
        StorageError: the statements cannot be prepared (Cassandra unreachable, keyspace not migrated).
    """

    def __init__(
        self,
        conn: CassandraConnection,
        keyspace: str,
        records: RecordCodec | None = None,
        *,
        concurrency: int = 64,
        cache_size: int = 100_000,
    ) -> None:
        if concurrency < 1 or cache_size < 0:
            raise ValueError("concurrency must be >= 1 and cache_size >= 0")
        self._session: Session = conn.session
        self._write_consistency: int | None = getattr(conn, "write_consistency", None)  # None: the session's
        self._records = records or RecordCodec()
        self._concurrency = concurrency
        self._keyspace = keyspace
        self._cache_size = cache_size
        self._started: OrderedDict[str, tuple[str, int]] = OrderedDict()
        try:
            self._prepare(keyspace)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"cannot prepare the history statements in {keyspace!r}: {exc!r}") from exc

    def _prepare(self, ks: str) -> None:
        prepare = self._session.prepare
        self._insert_event = prepare(
            f"INSERT INTO {ks}.events (run_id, seq, type, timestamp, data) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._insert_run = prepare(
            f"INSERT INTO {ks}.runs (run_id, workflow_name, status, args, started_at, parent_run_id, "
            "parent_position, continued_from, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ?"
        )
        self._finish_run = prepare(
            f"UPDATE {ks}.runs USING TIMESTAMP ? SET status = ?, result = ?, error_type = ?, "
            "error_message = ?, finished_at = ?, next_run_id = ? WHERE run_id = ?"
        )
        self._add_child = prepare(f"UPDATE {ks}.runs USING TIMESTAMP ? SET children[?] = ? WHERE run_id = ?")
        self._progress = prepare(
            f"UPDATE {ks}.runs USING TIMESTAMP ? SET last_seq = ?, updated_at = ? WHERE run_id = ?"
        )
        self._insert_status = prepare(
            f"INSERT INTO {ks}.runs_by_status (status, bucket, started_at, run_id, workflow_name) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._delete_status = prepare(
            f"DELETE FROM {ks}.runs_by_status USING TIMESTAMP ? WHERE status = ? "
            "AND bucket = ? AND started_at = ? AND run_id = ?"
        )
        self._insert_workflow = prepare(
            f"INSERT INTO {ks}.runs_by_workflow (workflow_name, bucket, started_at, run_id, status) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._update_workflow = prepare(
            f"UPDATE {ks}.runs_by_workflow USING TIMESTAMP ? SET status = ? WHERE workflow_name = ? "
            "AND bucket = ? AND started_at = ? AND run_id = ?"
        )
        self._insert_prefix = prepare(
            f"INSERT INTO {ks}.runs_by_id_prefix (prefix, run_id) VALUES (?, ?) USING TIMESTAMP ?"
        )
        self._lookup = prepare(f"SELECT workflow_name, started_at FROM {ks}.runs WHERE run_id = ?")
        # Writes carry the write consistency (a batch its own, below); the lookup reads at the session's.
        writes = (
            self._insert_event,
            self._insert_run,
            self._finish_run,
            self._add_child,
            self._progress,
            self._insert_status,
            self._delete_status,
            self._insert_workflow,
            self._update_workflow,
            self._insert_prefix,
        )
        for statement in writes if self._write_consistency is not None else ():
            statement.consistency_level = self._write_consistency

    async def write(self, events: Sequence[HistoryEvent], data: Sequence[bytes] | None = None) -> None:
        """Write ``events`` (any runs, any order) and the run changes they carry.

        Args:
            events: history events.
            data: the events' Avro single-object bytes as read from the history topic, stored verbatim
                in ``events.data``; by default each event is encoded with ``records``.

        Raises:
            StorageError: a request failed; some of the writes may have been applied. Writing the same
                events again is safe (see the module's invariant), so the caller retries the batch.
            SchemaError: an event cannot be encoded (only without ``data``).
        """
        if data is not None and len(data) != len(events):
            raise ValueError(f"{len(events)} events but {len(data)} encoded records")
        blobs = data if data is not None else [self._records.encode(event) for event in events]
        keys = {
            event.run_id: (event.workflow_name, event.timestamp)
            for event in events
            if isinstance(event, WorkflowStarted)
        }
        ended = {event.run_id for event in events if status_of(event) is not None}
        keys.update(await self._recall(ended - keys.keys()))
        groups = group_writes(self.plan(events, blobs, keys))
        one_node = len(self._session.cluster.metadata.all_hosts()) <= 1
        await self._execute_all(pack_groups(groups, (lambda group: None) if one_node else self._replicas))
        for run_id, (workflow_name, started_at) in keys.items():
            if run_id in ended:
                self._started.pop(run_id, None)  # finished: its keys are not needed again
            else:
                self._remember(run_id, workflow_name, started_at)

    def plan(
        self, events: Sequence[HistoryEvent], blobs: Sequence[bytes], keys: dict[str, tuple[str, int]]
    ) -> list[Write]:
        """The writes for ``events``; ``keys`` maps run ids to ``(workflow_name, started_at)``."""
        out: list[Write] = []
        latest: dict[str, HistoryEvent] = {}
        for event, blob in zip(events, blobs, strict=True):
            out.append(
                Write(
                    self._insert_event,
                    (event.run_id, event.seq, type(event).__name__, event.timestamp, blob, event.seq),
                    ("events", event.run_id),
                    len(blob),
                )
            )
            previous = latest.get(event.run_id)
            if previous is None or event.seq > previous.seq:
                latest[event.run_id] = event
            if isinstance(event, WorkflowStarted):
                out.extend(self._started_rows(event))
            elif isinstance(event, ChildWorkflowStarted):
                params = (event.seq, event.position, event.child_run_id, event.run_id)
                out.append(Write(self._add_child, params, ("runs", event.run_id)))
            elif status_of(event) is not None:
                out.extend(self._finished_rows(event, keys.get(event.run_id)))
        # Only the newest event of each run in the batch touches last_seq: one write per run, not per event.
        out.extend(
            Write(self._progress, (event.seq, event.seq, event.timestamp, event.run_id), ("runs", event.run_id))
            for event in latest.values()
        )
        return out

    def _started_rows(self, event: WorkflowStarted) -> list[Write]:
        bucket, ts, run_id = day_bucket(event.timestamp), event.seq, event.run_id
        return [
            Write(
                self._insert_run,
                (
                    run_id,
                    event.workflow_name,
                    RUNNING,
                    json_text(event.args),
                    event.timestamp,
                    _unset(event.parent_run_id),
                    _unset(event.parent_position),
                    _unset(event.continued_from),
                    _unset(event.idempotency_key),
                    ts,
                ),
                ("runs", run_id),
            ),
            Write(
                self._insert_status,
                (RUNNING, bucket, event.timestamp, run_id, event.workflow_name, ts),
                ("runs_by_status", RUNNING, bucket),
            ),
            Write(
                self._insert_workflow,
                (event.workflow_name, bucket, event.timestamp, run_id, RUNNING, ts),
                ("runs_by_workflow", event.workflow_name, bucket),
            ),
            Write(self._insert_prefix, (id_prefix(run_id), run_id, ts), ("runs_by_id_prefix", id_prefix(run_id))),
        ]

    def _finished_rows(self, event: HistoryEvent, started: tuple[str, int] | None) -> list[Write]:
        status, result, error_type, error_message, next_run_id = _outcome(event)
        ts = event.seq
        out = [
            Write(
                self._finish_run,
                (
                    ts,
                    status,
                    _unset(result),
                    _unset(error_type),
                    _unset(error_message),
                    event.timestamp,
                    _unset(next_run_id),
                    event.run_id,
                ),
                ("runs", event.run_id),
            )
        ]
        if started is None:
            log.warning(
                "run %s ended (seq %d) but its WorkflowStarted was never materialized: the query tables do not list it",
                event.run_id,
                event.seq,
            )
            return out
        workflow_name, started_at = started
        bucket = day_bucket(started_at)
        key = (bucket, started_at, event.run_id)
        # Invariant: the move out of `running` is a delete and an insert at the terminal event's seq,
        # newer than the WorkflowStarted insert (seq 1): replaying that insert cannot resurrect the row.
        out.append(Write(self._delete_status, (ts, RUNNING, *key), ("runs_by_status", RUNNING, bucket)))
        out.append(Write(self._insert_status, (status, *key, workflow_name, ts), ("runs_by_status", status, bucket)))
        out.append(
            Write(self._update_workflow, (ts, status, workflow_name, *key), ("runs_by_workflow", workflow_name, bucket))
        )
        return out

    def _remember(self, run_id: str, workflow_name: str, started_at: int) -> None:
        if self._cache_size == 0:
            return
        self._started[run_id] = (workflow_name, started_at)
        self._started.move_to_end(run_id)
        while len(self._started) > self._cache_size:
            self._started.popitem(last=False)

    async def _recall(self, run_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """``workflow_name``/``started_at`` of runs: from the cache, else read from their ``runs`` rows."""
        found: dict[str, tuple[str, int]] = {}
        missing: list[str] = []
        for run_id in run_ids:
            cached = self._started.get(run_id)
            if cached is None:
                missing.append(run_id)
            else:
                found[run_id] = cached
        if not missing:
            return found
        loop = asyncio.get_running_loop()
        futures = [self._submit(self._lookup, (run_id,), loop) for run_id in missing]
        for run_id, rows in zip(missing, await asyncio.gather(*futures), strict=True):
            row = rows[0] if rows else None
            started_at = to_ms(row.started_at) if row is not None else None
            if row is not None and row.workflow_name is not None and started_at is not None:
                found[run_id] = (row.workflow_name, started_at)
        return found

    def _submit(
        self, statement: object, params: tuple[object, ...] | None, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Any]:
        try:
            return bridge(self._session.execute_async(statement, params), loop)
        except DRIVER_ERRORS as exc:  # the driver reports most failures through the future, not all
            raise StorageError(f"Cassandra request failed: {exc!r}") from exc

    def _replicas(self, group: list[Write]) -> Hashable:
        """The nodes that own the partition ``group`` writes (a key for ``pack_groups``); None when unknown."""
        first = group[0]
        key = first.statement.bind(first.params).routing_key
        try:
            hosts = self._session.cluster.metadata.get_replicas(self._keyspace, key)
        except Exception:  # no token map yet (metadata still loading): all on one request path
            return None
        return tuple(sorted(str(host.endpoint) for host in hosts))

    def _request(self, pack: list[list[Write]], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        if len(pack) == 1 and len(pack[0]) == 1:
            return self._submit(pack[0][0].statement, pack[0][0].params, loop)
        batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=self._write_consistency)
        for group in pack:
            for write in group:
                batch.add(write.statement, write.params)
        return self._submit(batch, None, loop)

    async def _execute_all(self, packs: list[list[list[Write]]]) -> None:
        """Send ``packs`` (one request each) with at most ``concurrency`` in flight; raise the first failure."""
        loop = asyncio.get_running_loop()
        flight = _Flight(loop)
        for pack in packs:
            while flight.count >= self._concurrency and flight.error is None:
                await flight.wait_for_slot()
            if flight.error is not None:
                break  # stop issuing; the caller retries the whole batch
            flight.track(self._request(pack, loop))
        while flight.count:
            await flight.wait_for_slot()
        if flight.error is not None:
            raise flight.error


class _Flight:
    """Requests in flight: a count, the first error, and a way to wait until one finishes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.count = 0
        self.error: BaseException | None = None
        self._freed: asyncio.Future[None] | None = None

    def track(self, request: asyncio.Future[Any]) -> None:
        self.count += 1
        request.add_done_callback(self._finished)

    def _finished(self, request: asyncio.Future[Any]) -> None:
        self.count -= 1
        if self.error is None and not request.cancelled():
            self.error = request.exception()
        if self._freed is not None and not self._freed.done():
            self._freed.set_result(None)

    async def wait_for_slot(self) -> None:
        self._freed = self._loop.create_future()
        await self._freed


def _outcome(event: HistoryEvent) -> tuple[RunStatus, str | None, str | None, str | None, str | None]:
    """``(status, result JSON, error_type, error_message, next_run_id)`` of a terminal event."""
    status = status_of(event)
    if status is None:
        raise TypeError(f"{type(event).__name__} is not a terminal event")
    result = json_text(event.result) if isinstance(event, WorkflowCompleted) else None
    error = event.error if isinstance(event, WorkflowFailed) else None
    # A cancelled run's message column holds the cancel reason, when one was given.
    message = error.message if error is not None else event.reason if isinstance(event, WorkflowCancelled) else None
    next_run_id = event.next_run_id if isinstance(event, WorkflowContinuedAsNew) else None
    return status, result, None if error is None else error.type, message, next_run_id
