"""The delay processor: carries out every durable timer (sleeps, retry back-off, hook and run timeouts).

It consumes ``StartTimer`` / ``CancelTimer`` from ``<prefix>.timers`` (group ``<prefix>.delay``), keeps
the armed timers of each assigned partition in a persisted due-time index with a bounded in-memory head
(``streams._timer_index``, NOTES #10), and when a timer comes due produces ``TimerFired`` to
``<prefix>.inbox``, keyed by the run id, so it reaches the orchestrator partition that owns the run.

Ordering that makes it crash-safe:
- a batch of ``.timers`` records is applied to SQLite in one transaction, and its offsets are committed
  only after that transaction (and any fast-path fire or dead letter of the batch) is done: a record
  whose offset is committed is durable in the index, anything later is re-read and re-applied, which is
  harmless because arming is an upsert and cancelling a delete;
- a timer is deleted from the index only after its ``TimerFired`` was acknowledged by the broker.

Invariant: firing is at-least-once. A crash between the broker's ack and the delete (or a rebalance
during a fire) fires the timer again; the orchestrator ignores a ``TimerFired`` for a timer that is no
longer armed in the run's history (already elapsed or cancelled), so a duplicate has no effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from engine import CancelTimer, Clock, StartTimer, SystemClock, TimerFired
from schemas import RecordCodec, SchemaError
from streams._config import Settings
from streams._service import serve
from streams._kafka import consumer, producer
from streams._outputs import Output, dead_letter
from streams._timer_index import ArmedTimer, TimerHead, TimerIndex, TimerKey
from streams._topics import Topics

log = logging.getLogger(__name__)

LATENESS_SAMPLES = 1000
"""How many of the latest fires `DelayStats.lateness_ms` keeps."""

_FIRE_CHUNK = 500
"""Most timers produced before their deletes are committed: bounds memory and re-fires after a crash."""

_RETRY_SECONDS = 1.0
"""Back-off before a partition retries after firing failed (Kafka refused the records, SQLite failed)."""

_Fire = Callable[[Sequence[ArmedTimer]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DelayStats:
    """A snapshot of the delay processor's counters.

    Attributes:
        pending: timers armed in the indexes of the partitions this process owns.
        fired: ``TimerFired`` records produced since start (re-fires included).
        dead_lettered: ``.timers`` records sent to the dead-letter topic since start.
        lateness_ms: ``fired_at - fire_at`` of the latest fires (at most `LATENESS_SAMPLES`), oldest first.
    """

    pending: int
    fired: int
    dead_lettered: int
    lateness_ms: tuple[int, ...]


class _Rejected(Exception):
    """A ``.timers`` record that cannot be applied; it goes to the dead-letter topic."""

    def __init__(self, reason: str, error_type: str = "kflow.InvalidRecord") -> None:
        super().__init__(reason)
        self.reason, self.error_type = reason, error_type


class _PartitionTimers:
    """The timers of one assigned ``.timers`` partition: its index, its head and its scheduler task."""

    def __init__(self, partition: int, index: TimerIndex, head_size: int, clock: Clock, fire: _Fire) -> None:
        self.partition = partition
        self.index = index
        self.head = TimerHead(head_size)
        self._clock = clock
        self._fire = fire
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load the head from the index and start firing (timers persisted earlier fire without input)."""
        self.head.load(self.index.earliest(self.head.capacity))
        self._task = asyncio.create_task(self._schedule(), name=f"kflow-delay-{self.partition}")

    def apply(self, arms: list[ArmedTimer], removals: list[TimerKey]) -> None:
        """Persist a batch's arms and removals (one transaction), then mirror them in the head."""
        self.index.apply(arms, removals)
        for key in removals:
            self.head.discard(key)
        woken = [self.head.offer(timer) for timer in arms]
        if any(woken):
            self._wake.set()  # an earlier timer than the one the scheduler sleeps for

    async def close(self) -> None:
        """Stop firing and close the index (a fire in flight is abandoned: its timer stays armed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.index.close()

    async def _schedule(self) -> None:
        reload = False
        while True:
            try:
                if reload:
                    self.head.load(self.index.earliest(self.head.capacity))
                    reload = False
                await self._step()
            except Exception:
                # Whatever failed (Kafka refusing the fires, a SQLite error), every timer not yet deleted
                # is still in the index: back off, rebuild the head from it and go on.
                log.exception("partition %d: firing timers failed; retrying", self.partition)
                reload = True
                await asyncio.sleep(_RETRY_SECONDS)

    async def _step(self) -> None:
        """Fire what is due, else refill an exhausted head, else sleep until the next due time."""
        now = self._clock.now_ms()
        due = self.head.take_due(now, _FIRE_CHUNK)
        if due:
            await self._fire(due)
            self.index.remove_fired(due)
        elif self.head.needs_refill:
            self.head.load(self.index.earliest(self.head.capacity))
        else:
            await self._sleep_until(self.head.next_fire_at, now)

    async def _sleep_until(self, fire_at: int | None, now: int) -> None:
        """Wait until ``fire_at`` (forever when None) or until an earlier timer arrives."""
        # No await between computing `fire_at` and clearing: an arm cannot slip in unnoticed.
        self._wake.clear()
        delay = None if fire_at is None else max(0, fire_at - now) / 1000
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()


class DelayProcessor:
    """Keeps every durable timer of the ``.timers`` partitions this process owns, and fires them.

    Args:
        settings: servers and topic prefix.
        state_dir: folder of the timer indexes (``<state_dir>/<prefix>/timers-<partition>.sqlite3``).
        clock: source of ``now`` (due checks and ``fired_at``); the scheduler sleeps for the gap it reports.
        head_size: most timers per partition held in memory; the rest wait in SQLite only.
        records: codec for engine records (default: JSON payloads, ``settings.secret``).
    """

    def __init__(self, settings: Settings, *, state_dir: Path, clock: Clock = SystemClock(),
                 head_size: int = 1024, records: RecordCodec | None = None) -> None:
        if head_size < 1:
            raise ValueError(f"head_size must be at least 1, got {head_size}")
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.group = f"{settings.topic_prefix}.delay"
        self.state_dir = state_dir / settings.topic_prefix
        self.head_size = head_size
        self._clock = clock
        self._records = records or RecordCodec(secret=settings.secret)
        self._partitions: dict[int, _PartitionTimers] = {}
        # Held while a batch is applied and committed; a revoke waits for it, so a partition's index is
        # never closed under a batch and no offset is committed for a partition that was handed over.
        self._batch_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._fired = 0
        self._dead_lettered = 0
        self._lateness: deque[int] = deque(maxlen=LATENESS_SAMPLES)

    @property
    def stats(self) -> DelayStats:
        """Counters now (``pending`` counts rows in the open indexes)."""
        pending = sum(part.index.count() for part in self._partitions.values())
        return DelayStats(pending, self._fired, self._dead_lettered, tuple(self._lateness))

    @property
    def assigned(self) -> tuple[int, ...]:
        """The ``.timers`` partitions whose timers this process keeps and fires now."""
        return tuple(sorted(self._partitions))

    def index_path(self, partition: int) -> Path:
        """The SQLite file holding the timers of ``.timers`` partition ``partition``."""
        return self.state_dir / f"timers-{partition}.sqlite3"

    async def start(self) -> None:
        """Connect, join the group ``<prefix>.delay`` and start consuming in the background."""
        self._producer = producer(self.settings.bootstrap)
        await self._producer.start()
        self._consumer = consumer(self.settings.bootstrap, group_id=self.group)
        self._consumer.subscribe([self.topics.timers], listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume(), name="kflow-delay")

    async def stop(self) -> None:
        """Stop consuming and firing, leave the group, close the indexes and the producer."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        await self._release(list(self._partitions))
        if self._producer is not None:
            await self._producer.stop()

    async def run_until(self, stop: asyncio.Event) -> None:
        """``start``, run until ``stop`` is set, then ``stop``; re-raises a crash of the consumer loop."""
        await serve(self.start, self.stop, lambda: [] if self._task is None else [self._task], stop)

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            if not batches:
                continue
            async with self._batch_lock:
                done: dict[TopicPartition, int] = {}
                for tp, messages in batches.items():
                    if tp.partition in self._partitions and messages:
                        await self._apply_batch(self._partitions[tp.partition], tp, messages)
                        done[tp] = messages[-1].offset + 1
                await self._commit(done)

    async def _apply_batch(self, part: _PartitionTimers, tp: TopicPartition,
                           messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply one partition's records: index transaction, fast-path fires, dead letters."""
        # The last record for a key decides (an arm is an upsert, a cancel a delete), so a batch
        # collapses to one operation per timer before it touches SQLite.
        final: dict[TimerKey, ArmedTimer | None] = {}
        dead: list[Output] = []
        for message in messages:
            try:
                record = self._parse(message.value)
            except _Rejected as rejected:
                dead.append(self._dead_letter(tp, message, rejected))
                continue
            final[(record.run_id, record.timer_id)] = (
                ArmedTimer.of(record) if isinstance(record, StartTimer) else None)
        now = self._clock.now_ms()
        arms = [t for t in final.values() if t is not None and t.fire_at > now]
        # Fast path: a timer due on arrival never enters the index (its older row, if any, is deleted);
        # it is fired before the offsets are committed, so a crash before the ack re-reads and re-fires it.
        due = sorted(t for t in final.values() if t is not None and t.fire_at <= now)
        part.apply(arms, [key for key, timer in final.items() if timer is None or timer.fire_at <= now])
        if due:
            await self._fire(due)
        if dead:
            await self._send_dead_letters(dead)

    def _parse(self, value: bytes | None) -> StartTimer | CancelTimer:
        if value is None:
            raise _Rejected("a record without a value (tombstone)")
        try:
            record = self._records.decode(value)
        except SchemaError as exc:
            raise _Rejected(str(exc), f"{type(exc).__module__}.{type(exc).__qualname__}") from exc
        if not isinstance(record, (StartTimer, CancelTimer)):
            raise _Rejected(f"{type(record).__name__} does not belong on {self.topics.timers} "
                            f"(only StartTimer and CancelTimer do)")
        return record

    def _dead_letter(self, tp: TopicPartition, message: ConsumerRecord[bytes, bytes], rejected: _Rejected) -> Output:
        log.warning("dead letter from %s[%d]@%d: %s", tp.topic, tp.partition, message.offset, rejected.reason)
        return dead_letter(self._records.codec, topic=tp.topic, partition=tp.partition, offset=message.offset,
                           key=message.key, value=message.value or b"", reason=rejected.reason,
                           error_type=rejected.error_type)

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
            record = TimerFired(run_id=t.run_id, timer_id=t.timer_id, position=t.position, kind=t.kind,
                                fire_at=t.fire_at, fired_at=fired_at)
            acks.append(await self._producer.send(self.topics.inbox, self._records.encode(record),
                                                  key=t.run_id.encode()))
        await asyncio.gather(*acks)
        self._fired += len(timers)
        self._lateness.extend(fired_at - t.fire_at for t in timers)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on: the new owner re-reads these records and re-applies them idempotently.
            log.warning("offset commit of %s skipped: %s", sorted(offsets, key=str), exc)

    async def _adopt(self, partitions: list[int]) -> None:
        for number in partitions:
            if number in self._partitions:
                continue
            part = _PartitionTimers(number, TimerIndex(self.index_path(number)), self.head_size, self._clock,
                                    self._fire)
            part.start()
            self._partitions[number] = part
            log.info("delay partition %d assigned: %d timer(s) armed", number, part.index.count())

    async def _release(self, partitions: list[int]) -> None:
        for number in partitions:
            part = self._partitions.pop(number, None)
            if part is not None:
                await part.close()
                log.info("delay partition %d released", number)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Opens a partition's index when it is assigned; stops its timers and closes it when revoked."""

    def __init__(self, processor: DelayProcessor) -> None:
        self._processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batch in flight: its offsets must be committed while this member still owns them.
        async with self._processor._batch_lock:
            await self._processor._release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka awaits this before fetching, so each index is open before its first record arrives.
        await self._processor._adopt(sorted(tp.partition for tp in assigned))
