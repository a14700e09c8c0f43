"""``kflow compact``: drop the orchestrator's hot state of runs finished before a cutoff, and apply retention
to Cassandra (docs/storage.md, "Compaction").

For each finished run found in Cassandra (``RunStore.compactable_runs``) and not compacted yet, a
``ForgetRun`` goes to ``<prefix>.inbox`` keyed by the run id; the orchestrator owning the run's partition
then drops the run's status and writes a tombstone for its ``RunMarker`` on the compacted ``<prefix>.state``
topic, so Kafka's log compaction reclaims it, and any later record for the run goes to ``<prefix>.dlq``.
Only once that orchestrator confirmed it (``streams.ops._forget_answers``: the tombstone, or a ``forgotten``
marker) is a run marked compacted in Cassandra (and, with ``purge_history``, its ``events`` rows deleted): a run
the orchestrator refused (still running, or not a run of this topic prefix) or did not answer for is left as it
was and reported. So a compaction touches only runs of its own prefix, and an interrupted one is simply run again:
the runs not marked are found again.
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

from engine import InvalidDurationError
from engine.runtime import ForgetRun, parse_duration
from schemas import RecordCodec
from storage import CassandraConnection, FinishedRun, HistorySize, RunStore, migrate
from streams._errors import kafka_errors
from streams._settings import Settings
from streams._topics import Topics
from streams.kafka import admin, producer
from streams.ops._forget_answers import NO_ANSWER, ForgetAnswers, SentForget
from streams.ops._views import OpsError, format_time

log = logging.getLogger(__name__)

CHUNK: Final = 500
"""Runs handled per round: their ForgetRun records are answered before any of them is marked."""
CONFIRM_TIMEOUT_S: Final = 60.0
"""How long a round waits for the orchestrator's answers to its ForgetRun records."""

_NONE: Final = HistorySize(0, 0)


@dataclass(frozen=True, slots=True)
class CompactedRun:
    """One run a compaction handled (or, in a dry run, would handle).

    ``forgotten``: a ``ForgetRun`` was sent for it and confirmed (False for a run compacted earlier whose history
    is purged now); ``purged``: what its purged history held (None when its history is kept or was purged before);
    ``refused``: why the orchestrator did not confirm its ``ForgetRun`` (the run was left as it was).
    """

    run_id: str
    workflow_name: str
    status: str
    finished_at: int
    forgotten: bool
    purged: HistorySize | None
    refused: str | None = None


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
        unconfirmed: runs whose ``ForgetRun`` the orchestrator did not confirm, left for the next pass.
    """

    cutoff_ms: int
    dry_run: bool
    runs: int = 0
    histories_purged: int = 0
    events_purged: int = 0
    cassandra_bytes_purged: int = 0
    state_bytes_tombstoned: int = 0
    unconfirmed: int = 0

    def add(self, run: CompactedRun, state_bytes: int) -> CompactReport:
        """This report with ``run`` counted (``state_bytes``: its marker estimate, counted if forgotten)."""
        if run.refused is not None:
            return replace(self, unconfirmed=self.unconfirmed + 1)
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
    confirm_timeout: float = CONFIRM_TIMEOUT_S,
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
        chunk: runs per round (their records are answered before any of them is marked).
        confirm_timeout: seconds a round waits for the orchestrator's answers.

    Returns:
        The totals.

    Raises:
        ValueError: ``older_than_ms`` < 0 or ``chunk`` < 1.
        StorageError: Cassandra unreachable or refusing a request (rerunning is safe).
        OpsError: the inbox topic is missing (nothing was marked); no orchestrator answered a round (its runs
            were not marked).
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
                refused: dict[str, str] = {}
                if forget and not dry_run:
                    why = f"finished before {format_time(report.cutoff_ms)} UTC"
                    refused = await inbox.forget(forget, why, now_ms, confirm_timeout)
                    _check_answered(settings, forget, refused, confirm_timeout)
                done = iter(
                    await asyncio.gather(
                        *(
                            asyncio.to_thread(_settle, store, run, purge_history, dry_run, now_ms)
                            for run in batch
                            if run.run_id not in refused
                        )
                    )
                )
                for run in batch:
                    handled = _left(run, refused[run.run_id]) if run.run_id in refused else next(done)
                    report = report.add(handled, marker_size(records, run))
                    if progress is not None:
                        progress(handled)
    log.info("compact: %s", report)
    return report


def _take(runs: Iterator[FinishedRun], count: int) -> list[FinishedRun]:
    return list(itertools.islice(runs, count))


def _left(run: FinishedRun, reason: str) -> CompactedRun:
    """A run whose ForgetRun the orchestrator did not confirm: neither marked nor purged."""
    log.warning("compact: run %s left for the next pass: %s", run.run_id, reason)
    return CompactedRun(run.run_id, run.workflow_name, run.status, run.finished_at, False, None, reason)


def _check_answered(settings: Settings, forget: list[FinishedRun], refused: dict[str, str], timeout: float) -> None:
    """Raise when no answer came at all: no orchestrator runs for this prefix, and later rounds would wait too."""
    if len(refused) == len(forget) and all(reason.startswith(NO_ANSWER) for reason in refused.values()):
        raise OpsError(
            f"no orchestrator answered the ForgetRun records of {len(forget)} run(s) within {timeout:g} s (is "
            f"`kflow processor` running for topic prefix {settings.topic_prefix}?): they were not marked or purged"
        )


def _settle(store: RunStore, run: FinishedRun, purge_history: bool, dry_run: bool, now_ms: int) -> CompactedRun:
    """Purge (if asked and not done before) and mark one run once the orchestrator confirmed its ForgetRun
    (blocking: run in a thread); in a dry run only read what a purge would delete."""
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
        self._target = settings.kafka_target()
        topics = Topics(settings.topic_prefix)
        self._topic = topics.inbox
        self._records = records
        self._producer: AIOKafkaProducer | None = None
        self._answers = ForgetAnswers(self._target, topics, records.codec)

    async def __aenter__(self) -> _Inbox:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._answers.close()
        if self._producer is not None:
            await self._producer.stop()

    async def forget(self, runs: list[FinishedRun], reason: str, now_ms: int, timeout: float) -> dict[str, str]:
        """Send one ``ForgetRun`` per run, keyed by its id, and wait (``timeout`` s at most) for the orchestrator
        to answer each; returns why each run it did not confirm was not (``ForgetAnswers.wait``).

        Raises:
            OpsError: the inbox topic does not exist.
            TransportError: Kafka is unreachable or refused a record.
        """
        with kafka_errors(self._target, f"sending ForgetRun records to {self._topic}"):
            sender = self._producer or await self._start()
            marks = await self._answers.mark(await sender.partitions_for(self._topic))
            sent = [
                await sender.send(
                    self._topic,
                    self._records.encode(ForgetRun(run_id=run.run_id, reason=reason, requested_at=now_ms)),
                    key=run.run_id.encode("utf-8"),
                )
                for run in runs
            ]
            acked = await asyncio.gather(*sent)
        forgets = [SentForget(run.run_id, meta.partition, meta.offset) for run, meta in zip(runs, acked, strict=True)]
        with kafka_errors(self._target, "reading the orchestrator's answers"):
            return await self._answers.wait(forgets, marks, timeout)

    async def _start(self) -> AIOKafkaProducer:
        client = admin(self._target)
        await client.start()
        try:
            # checked first: the broker may auto-create a missing topic, with the wrong partition count
            exists = self._topic in await client.list_topics()
        finally:
            await client.close()
        if not exists:
            raise OpsError(f"there is no topic {self._topic} on {self._target.bootstrap} (KFLOW_TOPIC_PREFIX?)")
        started = producer(self._target)
        try:
            await started.start()
        except BaseException:
            await started.stop()
            raise
        self._producer = started
        return started
