"""``kflow compact``: drop the orchestrator's hot state of runs finished before a cutoff, and apply retention
to Cassandra (docs/storage.md, "Compaction").

For each finished run found in Cassandra (``RunStore.compactable_runs``) and not compacted yet, a
``ForgetRun`` goes to ``<prefix>.inbox`` keyed by the run id; the orchestrator owning the run's partition
then drops the run's status and writes a tombstone for its ``RunMarker`` on the compacted ``<prefix>.state``
topic, so Kafka's log compaction reclaims it, and any later record for the run goes to ``<prefix>.dlq``.
Only once Kafka has acknowledged a chunk's records are its runs marked compacted in Cassandra (and, with
``purge_history``, their ``events`` rows deleted), so an interrupted compaction is simply run again: the
runs not marked are found again, and a repeated ``ForgetRun`` is a no-op for the orchestrator.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from engine import InvalidDurationError
from engine.runtime import ForgetRun, parse_duration
from schemas import RecordCodec
from storage import CassandraConnection, FinishedRun, HistorySize, RunStore, migrate
from streams._errors import kafka_errors
from streams._settings import Settings
from streams._topics import Topics
from streams.kafka import producer
from streams.ops._views import OpsError, format_time

log = logging.getLogger(__name__)

CHUNK: Final = 500
"""Runs handled per round: their ForgetRun records are acknowledged before any of them is marked."""

_NONE: Final = HistorySize(0, 0)


@dataclass(frozen=True, slots=True)
class CompactedRun:
    """One run a compaction handled (or, in a dry run, would handle).

    ``forgotten``: a ``ForgetRun`` was sent for it (False for a run compacted earlier whose history is purged
    now); ``purged``: what its purged history held (None when its history is kept or was purged before).
    """

    run_id: str
    workflow_name: str
    status: str
    finished_at: int
    forgotten: bool
    purged: HistorySize | None


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What ``compact`` did (in a dry run: what it would do).

    Attributes:
        cutoff_ms: runs finished before this instant (epoch ms) were compacted.
        dry_run: nothing was changed.
        runs: runs whose hot state was dropped (a ``ForgetRun`` sent to the inbox).
        histories_purged: runs whose ``events`` rows were deleted (``purge_history``).
        events_purged: ``events`` rows deleted.
        cassandra_bytes_purged: bytes of event data those rows held (sum of ``len(data)``).
        state_bytes_tombstoned: an estimate of the ``<prefix>.state`` bytes the orchestrator's tombstones let
            log compaction reclaim: key plus value of a ``RunMarker`` equal to each forgotten run's, without
            Kafka's per-record and per-batch overhead.
    """

    cutoff_ms: int
    dry_run: bool
    runs: int = 0
    histories_purged: int = 0
    events_purged: int = 0
    cassandra_bytes_purged: int = 0
    state_bytes_tombstoned: int = 0

    def add(self, run: CompactedRun, state_bytes: int) -> CompactReport:
        """This report with ``run`` counted (``state_bytes``: its marker estimate, counted if forgotten)."""
        purged = run.purged or _NONE
        return replace(
            self,
            runs=self.runs + run.forgotten,
            histories_purged=self.histories_purged + (run.purged is not None),
            events_purged=self.events_purged + purged.events,
            cassandra_bytes_purged=self.cassandra_bytes_purged + purged.bytes,
            state_bytes_tombstoned=self.state_bytes_tombstoned + (state_bytes if run.forgotten else 0),
        )


def parse_older_than(text: str) -> int:
    """``--older-than``: a duration such as ``7d``, ``12h``, ``30m`` (``0``: every finished run), in ms.

    Raises:
        OpsError: not a duration.
    """
    if text.strip() == "0":
        return 0
    try:
        return parse_duration(text)
    except InvalidDurationError:
        raise OpsError(
            f"--older-than {text!r}: expected a duration such as 7d, 12h or 30m (0: every finished run)"
        ) from None


def marker_size(records: RecordCodec, run: FinishedRun) -> int:
    """Key plus value bytes of the ``RunMarker`` the orchestrator keeps for ``run`` (an estimate: it encodes
    an equivalent marker from the ``runs`` row, not the record on the topic; a run started with an idempotency
    key keeps a smaller ``forgotten`` marker instead of none, so its share is overestimated)."""
    value = records.codec.encode(
        "RunMarker",
        {
            "run_id": run.run_id,
            "workflow_name": run.workflow_name,
            "status": run.status,
            "next_run_id": run.next_run_id,
            "finished_at": run.finished_at,
            "idempotency_key": None,
        },
    )
    return len(run.run_id.encode("utf-8")) + len(value)


async def compact(
    settings: Settings,
    *,
    older_than_ms: int,
    purge_history: bool,
    dry_run: bool,
    now_ms: int,
    progress: Callable[[CompactedRun], None] | None = None,
    chunk: int = CHUNK,
) -> CompactReport:
    """Compact the runs finished more than ``older_than_ms`` before ``now_ms`` (epoch ms).

    Args:
        settings: Cassandra, keyspace, bootstrap and topic prefix.
        older_than_ms: retention; 0 compacts every finished run.
        purge_history: also delete the runs' ``events`` rows (their ``runs`` rows stay).
        dry_run: find and count (reading the sizes of the histories that would be purged), change nothing
            and send nothing; Kafka is not contacted.
        now_ms: the current time; also the ``compacted_at`` written.
        progress: called with each run once it is handled (in a dry run: found).
        chunk: runs per round (their records are acknowledged before any of them is marked).

    Returns:
        The totals.

    Raises:
        ValueError: ``older_than_ms`` < 0 or ``chunk`` < 1.
        StorageError: Cassandra unreachable or refusing a request (rerunning is safe).
        OpsError: the inbox topic is missing (nothing was marked).
        TransportError: Kafka is unreachable or refused a record (nothing of that chunk was marked).
    """
    if older_than_ms < 0 or chunk < 1:
        raise ValueError(f"older_than_ms must be >= 0 and chunk >= 1, got {older_than_ms} and {chunk}")
    report = CompactReport(cutoff_ms=now_ms - older_than_ms, dry_run=dry_run)
    records = RecordCodec(secret=settings.secret)
    with CassandraConnection(settings.cassandra_target()) as conn:
        if not dry_run:
            await asyncio.to_thread(migrate, conn, settings.keyspace)  # the compaction columns (002)
        store = RunStore(conn, settings.keyspace, records)
        found = store.compactable_runs(report.cutoff_ms, purge_history=purge_history)
        async with _Inbox(settings, records) as inbox:
            while batch := await asyncio.to_thread(_take, found, chunk):
                forget = [run for run in batch if run.compacted_at is None]
                if forget and not dry_run:
                    await inbox.forget(forget, f"finished before {format_time(report.cutoff_ms)} UTC", now_ms)
                done = await asyncio.gather(
                    *(asyncio.to_thread(_settle, store, run, purge_history, dry_run, now_ms) for run in batch)
                )
                for run, handled in zip(batch, done, strict=True):
                    report = report.add(handled, marker_size(records, run))
                    if progress is not None:
                        progress(handled)
    log.info("compact: %s", report)
    return report


def _take(runs: Iterator[FinishedRun], count: int) -> list[FinishedRun]:
    return list(itertools.islice(runs, count))


def _settle(store: RunStore, run: FinishedRun, purge_history: bool, dry_run: bool, now_ms: int) -> CompactedRun:
    """Purge (if asked and not done before) and mark one run once Kafka has its ForgetRun (blocking: run in a
    thread); in a dry run only read what a purge would delete."""
    purge = purge_history and not run.history_purged
    purged: HistorySize | None = None
    if dry_run:
        purged = store.history_size(run.run_id) if purge else None
    else:
        purged = store.purge_history(run.run_id) if purge else None
        store.mark_compacted(
            run.run_id, compacted_at=run.compacted_at or now_ms, history_purged=run.history_purged or purge
        )
    return CompactedRun(run.run_id, run.workflow_name, run.status, run.finished_at, run.compacted_at is None, purged)


class _Inbox:
    """The ``ForgetRun`` sender: an idempotent producer on ``<prefix>.inbox``, started at the first send."""

    def __init__(self, settings: Settings, records: RecordCodec) -> None:
        self._bootstrap = settings.bootstrap
        self._topic = Topics(settings.topic_prefix).inbox
        self._records = records
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> _Inbox:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def forget(self, runs: list[FinishedRun], reason: str, now_ms: int) -> None:
        """Send one ``ForgetRun`` per run, keyed by its id; returns once Kafka acknowledged all of them.

        Raises:
            OpsError: the inbox topic does not exist.
            TransportError: Kafka is unreachable or refused a record.
        """
        with kafka_errors(self._bootstrap, f"sending ForgetRun records to {self._topic}"):
            sender = self._producer or await self._start()
            sent = [
                await sender.send(
                    self._topic,
                    self._records.encode(ForgetRun(run_id=run.run_id, reason=reason, requested_at=now_ms)),
                    key=run.run_id.encode("utf-8"),
                )
                for run in runs
            ]
            await asyncio.gather(*sent)

    async def _start(self) -> AIOKafkaProducer:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            # checked first: the broker may auto-create a missing topic, with the wrong partition count
            exists = self._topic in await admin.list_topics()
        finally:
            await admin.close()
        if not exists:
            raise OpsError(f"there is no topic {self._topic} on {self._bootstrap} (KFLOW_TOPIC_PREFIX?)")
        started = producer(self._bootstrap)
        try:
            await started.start()
        except BaseException:
            await started.stop()
            raise
        self._producer = started
        return started
