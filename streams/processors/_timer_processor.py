"""The timer processor: carries out every durable timer (sleeps, retry back-off, hook, run and schedule timers).

It consumes ``StartTimer`` / ``CancelTimer`` from ``<prefix>.timers`` (group ``<prefix>.delay``), keeps
the armed timers of each assigned partition in a persisted due-time index with a bounded in-memory head
(``streams.processors._timer_index``, docs/notes.md #10), and when a timer comes due produces ``TimerFired`` to
``<prefix>.inbox``, keyed by the run id, so it reaches the orchestrator partition that owns the run.

The SQLite index is local to a host; the source of truth is the compacted changelog
``<prefix>.timer-index`` (``streams.processors._timer_changelog``): the ``StartTimer`` of every armed timer, a
tombstone once it fired or was cancelled, on the partition number of its ``.timers`` partition. The
index stores the changelog end offset it reflects; on assignment a partition whose index does not match
the changelog's end (no file, a file from before a move to another host, a stale file) is rebuilt from
the changelog before any of its records is processed.

Ordering that makes it crash-safe and movable:
- a batch of ``.timers`` records is written to the changelog (acknowledged), then applied to SQLite in one
  transaction, and its offsets are committed only after that (and any fast-path fire or dead letter of
  the batch) is done: a record whose offset is committed is in the changelog and in the index, anything
  later is re-read and re-applied, which is harmless because arming is an upsert and cancelling a delete;
- a fire produces ``TimerFired`` (acknowledged), then the timer's tombstone (acknowledged), then deletes
  the row; a changelog write and the SQLite transaction that mirrors it happen under one per-partition
  lock, so the changelog and the index agree on every timer and the stored end offset is exact.

Invariant: firing is at-least-once. A crash between ``TimerFired``'s ack and the tombstone or the delete
(or a rebalance during a fire) fires the timer again, from the index or from a rebuilt one; the
orchestrator ignores a ``TimerFired`` for a timer that is no longer armed in the run's history or the
schedule's state (already elapsed, cancelled or superseded), so a duplicate has no effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection, Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord

from engine.runtime import Clock, StartTimer, SystemClock, TimerFired
from schemas import RecordCodec, RecordSigner
from streams._partition_check import check_partition_counts
from streams._schema_topic import join_schema_topic
from streams._settings import Settings
from streams._topics import Topics
from streams._tracing import carrier
from streams.kafka import close_consumer, close_producer, consumer, producer
from streams.processors._metrics import TIMER_LATENESS
from streams.processors._outputs import Output, dead_letter
from streams.processors._partition_timers import PartitionTimers, open_index
from streams.processors._serve import FAULTS, ProgressWatch, supervise
from streams.processors._timer_changelog import TimerChangelog
from streams.processors._timer_index import ArmedTimer, TimerIndex, TimerKey
from streams.processors._timer_inputs import (
    LATENESS_SAMPLES,
    Rejected,
    TimerStats,
    parse_timer_record,
    record_timer_spans,
)

log = logging.getLogger(__name__)

BATCH_TIMEOUT_S = 30.0
"""Longest one batch (changelog writes, fast-path fires, offset commit) may take before the loop fails."""


class TimerProcessor:
    """Keeps every durable timer of the ``.timers`` partitions this process owns, and fires them.

    Args:
        settings: servers and topic prefix.
        state_dir: folder of the timer indexes (``<state_dir>/<prefix>/timers-<partition>.sqlite3``); an
            empty or foreign one only costs a rebuild from the changelog.
        clock: source of ``now`` (due checks and ``fired_at``; default the system clock); the scheduler sleeps
            for the gap it reports.
        head_size: most timers per partition held in memory; the rest wait in SQLite only.
        records: codec for engine records (default: JSON payloads, ``settings.secret``).

    With ``settings.secret`` set, every ``TimerFired`` carries a MAC (``schemas.RecordSigner``): the orchestrator
    then refuses timers that do not.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        state_dir: Path,
        clock: Clock | None = None,
        head_size: int = 1024,
        records: RecordCodec | None = None,
    ) -> None:
        if head_size < 1:
            raise ValueError(f"head_size must be at least 1, got {head_size}")
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.group = f"{settings.topic_prefix}.delay"
        self.state_dir = state_dir / settings.topic_prefix
        self.head_size = head_size
        self._clock = clock or SystemClock()
        self._records = records or RecordCodec(secret=settings.secret)
        self._signer = None if settings.secret is None else RecordSigner(settings.secret)
        self._partitions: dict[int, PartitionTimers] = {}
        # Held while a batch is applied and committed; a revoke waits for it, so a partition's index is
        # never closed under a batch and no offset is committed for a partition that was handed over.
        self._batch_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._fired = 0
        self._dead_lettered = 0
        self._lateness: deque[int] = deque(maxlen=LATENESS_SAMPLES)
        self._restored = 0
        self._restore_seconds = 0.0
        self._changelog = TimerChangelog(settings.kafka_target(), self.topics, self._records)
        # Set when a partition could not be adopted (the rebalance listener cannot raise into the loop):
        # the consumer loop re-raises it rather than skip the partition's records.
        self._failure: Exception | None = None
        self._adopting: asyncio.Task[None] | None = None
        self._stopping = False  # set while stopping: a rebalance callback then adopts nothing
        self._watch = ProgressWatch()
        self.name = "timer processor"

    @property
    def stats(self) -> TimerStats:
        """Counters now (``pending`` counts rows in the open indexes)."""
        pending = sum(part.index.count() for part in self._partitions.values())
        return TimerStats(
            pending, self._fired, self._dead_lettered, tuple(self._lateness), self._restored, self._restore_seconds
        )

    @property
    def changelog_topic(self) -> str:
        """The compacted topic the indexes are rebuilt from (``<prefix>.timer-index``)."""
        return self._changelog.topic

    @property
    def assigned(self) -> tuple[int, ...]:
        """The ``.timers`` partitions whose timers this process keeps and fires now."""
        return tuple(sorted(self._partitions))

    def index_path(self, partition: int) -> Path:
        """The SQLite file holding the timers of ``.timers`` partition ``partition``."""
        return self.state_dir / f"timers-{partition}.sqlite3"

    async def start(self) -> None:
        """Check (or create) the changelog, connect, join the group ``<prefix>.delay``, consume in the background.

        Raises:
            streams.processors._timer_changelog.ChangelogError: the changelog topic is not compacted or its partition
                count differs from ``.timers``'.
        """
        await self._changelog.ensure_topic()
        await join_schema_topic(self.settings.kafka_target(), self.topics, self._records.codec)
        await check_partition_counts(self.settings.kafka_target(), self.topics, "the timer processor")
        self._failure, self._stopping = None, False
        self._producer = producer(self.settings.kafka_target())
        await self._producer.start()
        self._changelog.attach(self._producer)
        self._consumer = consumer(
            self.settings.kafka_target(), group_id=self.group, instance_id=self.settings.instance_id
        )
        self._consumer.subscribe([self.topics.timers], listener=_Listener(self))
        self._watch.reset()
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume(), name="kflow-timers")

    async def stop(self) -> None:
        """Stop consuming and firing, close the indexes, leave the group, close the producer."""
        self._stopping = True
        for task in (self._task, self._adopting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._adopting = None
        # Before leaving the group: once it is left a new owner may rebuild from the changelog, and this
        # process should not go on firing behind its back (a send already queued may still land: harmless).
        await self._release(list(self._partitions))
        if self._consumer is not None:
            await close_consumer(self._consumer)
            self._consumer = None
        await self._release(list(self._partitions))  # none, unless a rebalance ended while the consumer closed
        if self._producer is not None:
            await close_producer(self._producer)
            self._producer = None

    def loops(self) -> Collection[asyncio.Task[None]]:
        """The consumer loop (while started)."""
        return [] if self._task is None else [self._task]

    async def health(self) -> str | None:
        """A reason to rebuild the Kafka clients (see ``streams.processors._serve``), or None."""
        return None if self._consumer is None else await self._watch.check(self._consumer, self.group)

    async def readiness(self) -> str | None:
        """Why the timer processor is not ready (an assigned partition whose index is not open yet), or None."""
        if self._consumer is None:
            return "not started"
        waiting = sorted({tp.partition for tp in self._consumer.assignment()} - set(self._partitions))
        return f"timer partitions {waiting} not adopted yet (index being rebuilt)" if waiting else None

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, reconnecting through broker faults (``streams.processors._serve``)."""
        await supervise(self, stop)

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            self._watch.polled()
            if self._failure is not None:
                raise self._failure
            if not batches:
                continue
            # A broker gone mid-batch (changelog writes, fires and the commit wait for it) fails the loop: the
            # batch was not committed, the rebuilt consumer reads it again and applies it again (idempotent).
            async with self._batch_lock, asyncio.timeout(BATCH_TIMEOUT_S):
                done: dict[TopicPartition, int] = {}
                for tp, messages in batches.items():
                    if tp.partition in self._partitions and messages:
                        await self._apply_batch(self._partitions[tp.partition], tp, messages)
                        done[tp] = messages[-1].offset + 1
                    elif messages and tp in self._consumer.assignment():
                        # Fetched before its index was ready (a partition is paused while adopted, so this
                        # is a safety net): skipping would lose the records, so read them again later.
                        log.warning(
                            "records of timer partition %d fetched before it was adopted; re-reading", tp.partition
                        )
                        self._consumer.seek(tp, messages[0].offset)
                await self._commit(done)

    async def _apply_batch(
        self, part: PartitionTimers, tp: TopicPartition, messages: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Apply one partition's records: index transaction, fast-path fires, dead letters."""
        # The last record for a key decides (an arm is an upsert, a cancel a delete), so a batch
        # collapses to one operation per timer before it touches SQLite.
        final: dict[TimerKey, tuple[ArmedTimer, bytes] | None] = {}
        dead: list[Output] = []
        for message in messages:
            try:
                record = parse_timer_record(self._records, self.topics.timers, message.value)
            except Rejected as rejected:
                dead.append(self._dead_letter(tp, message, rejected))
                continue
            # The changelog value is the StartTimer exactly as read (no re-encoding).
            final[(record.run_id, record.timer_id)] = (
                (ArmedTimer.of(record, carrier(message.headers)), message.value)
                if isinstance(record, StartTimer)
                else None
            )
        now = self._clock.now_ms()
        arms = [arm for arm in final.values() if arm is not None and arm[0].fire_at > now]
        # Fast path: a timer due on arrival never enters the index nor the changelog (its older row, if any,
        # is deleted and tombstoned); it is fired before the offsets are committed, so a crash before the
        # ack re-reads and re-fires it.
        due = sorted(arm[0] for arm in final.values() if arm is not None and arm[0].fire_at <= now)
        await part.apply(arms, [key for key, arm in final.items() if arm is None or arm[0].fire_at <= now])
        if due:
            await self._fire(due)
        if dead:
            await self._send_dead_letters(dead)

    def _dead_letter(self, tp: TopicPartition, message: ConsumerRecord[bytes, bytes], rejected: Rejected) -> Output:
        log.warning("dead letter from %s[%d]@%d: %s", tp.topic, tp.partition, message.offset, rejected.reason)
        return dead_letter(
            self._records.codec,
            topic=tp.topic,
            partition=tp.partition,
            offset=message.offset,
            key=message.key,
            value=message.value or b"",
            reason=rejected.reason,
            error_type=rejected.error_type,
        )

    async def _send_dead_letters(self, dead: list[Output]) -> None:
        assert self._producer is not None
        acks = [await self._producer.send(self.topics.name(out.topic), out.value, key=out.key) for out in dead]
        await asyncio.gather(*acks)
        self._dead_lettered += len(dead)

    async def _fire(self, timers: Sequence[ArmedTimer]) -> None:
        """Produce ``TimerFired`` for each timer (keyed by run id) and wait for every ack."""
        assert self._producer is not None
        fired_at = self._clock.now_ms()
        acks = []
        for t in timers:
            record = TimerFired(
                run_id=t.run_id,
                timer_id=t.timer_id,
                position=t.position,
                kind=t.kind,
                fire_at=t.fire_at,
                fired_at=fired_at,
            )
            if self._signer is not None:
                record = self._signer.sign(record)
            value, headers = self._records.encode(record), list(t.trace) or None
            acks.append(await self._producer.send(self.topics.inbox, value, key=t.run_id.encode(), headers=headers))
        await asyncio.gather(*acks)
        record_timer_spans(timers, fired_at)
        self._fired += len(timers)
        self._lateness.extend(fired_at - t.fire_at for t in timers)
        for t in timers:
            TIMER_LATENESS.observe(max(0, fired_at - t.fire_at) / 1000)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on: the new owner re-reads these records and re-applies them idempotently.
            log.warning("offset commit of %s skipped: %s", sorted(offsets, key=str), exc)

    def _assigned(self, assigned: list[TopicPartition]) -> None:
        # No record is taken before its partition's index is ready: the partitions stay paused until adopted.
        # The adoption (a changelog check, maybe a rebuild read) runs outside the rebalance listener, so the
        # group's heartbeats go on meanwhile.
        assert self._consumer is not None
        self._consumer.pause(*assigned)
        if self._stopping:
            return
        previous = self._adopting
        self._adopting = asyncio.create_task(self._adopt_all(previous, assigned), name="kflow-timers-adopt")

    async def _adopt_all(self, previous: asyncio.Task[None] | None, assigned: list[TopicPartition]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        pause = 0.5
        while True:
            try:
                await self._adopt(sorted(tp.partition for tp in assigned))
                break
            except FAULTS as exc:
                log.warning("adopting timer partitions failed (%r); retrying in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
            except Exception as exc:  # not a broker fault (a misconfigured changelog): the loop raises it
                log.exception("adopting timer partitions failed")
                self._failure = exc
                return
        assert self._consumer is not None
        self._consumer.resume(*(tp for tp in assigned if tp in self._consumer.assignment()))

    async def _adopt(self, partitions: list[int]) -> None:
        new = [number for number in partitions if number not in self._partitions]
        ends = await self._changelog.end_offsets(new) if new else {}
        for number in new:
            part = PartitionTimers(
                number,
                await self._open_index(number, ends[number]),
                self.head_size,
                self._clock,
                self._fire,
                self._changelog,
            )
            part.start()
            self._partitions[number] = part
            log.info("timer partition %d assigned: %d timer(s) armed", number, part.index.count())

    async def _open_index(self, number: int, end: int) -> TimerIndex:
        """The partition's index, rebuilt from the changelog unless it reflects the changelog's ``end``."""
        index, restored, elapsed = await open_index(self.index_path(number), self._changelog, number, end, self._clock)
        if restored is not None:
            self._restored += len(restored.timers)
            self._restore_seconds += elapsed
        return index

    async def _release(self, partitions: list[int]) -> None:
        for number in partitions:
            part = self._partitions.pop(number, None)
            if part is not None:
                await part.close()
                log.info("timer partition %d released", number)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Opens a partition's index when it is assigned; stops its timers and closes it when revoked."""

    def __init__(self, processor: TimerProcessor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        processor = self._processor
        if processor._adopting is not None:  # adopting what is being taken away: stop, release what it opened
            processor._adopting.cancel()
            await asyncio.gather(processor._adopting, return_exceptions=True)
            processor._adopting = None
        # Wait for the batch in flight: its offsets must be committed while this member still owns them.
        async with processor._batch_lock:
            await processor._release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._processor._assigned(sorted(assigned))
