"""The orchestrator: consumes ``.inbox``, decides with the engine, writes history and commands.

Every batch a partition yields is one Kafka transaction: its history events, step commands, timer
requests, completions and dead letters, together with the inbox offsets that produced them. A crash
therefore leaves either all of a batch's effects or none, and the history topic is always the exact
state after the last committed inbox offset — which is how a partition is recovered: fence the previous
owner, read its history partition back (read_committed), continue from the committed inbox offset.

Invariant: one transactional producer per inbox partition (``<prefix>.orchestrator.<p>``): aiokafka has
no KIP-447, so fencing a zombie owner of partition p needs a transactional id bound to p (docs/notes.md #3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from engine import EventLimits, Registry
from engine.runtime import HISTORY_EVENT_TYPES, Clock, HistoryEvent, SystemClock
from schemas import RecordCodec, SchemaError
from streams._settings import Settings
from streams._topics import Topics, ensure_internal_topic
from streams.kafka import consumer, producer
from streams.processors._outputs import Output
from streams.processors._partition_logic import PartitionLogic
from streams.processors._serve import serve

log = logging.getLogger(__name__)


@dataclass(slots=True)
class OrchestratorStats:
    """Counters for benchmarks and ops."""

    records: int = 0
    transactions: int = 0
    outputs: int = 0
    restored_events: int = 0  # history events applied while adopting partitions
    history_read: int = 0  # history records read while adopting (from each partition's checkpoint on)
    restore_seconds: float = 0.0  # time spent reading state + history while adopting
    resets: int = 0


class Orchestrator:
    """Runs workflow code for the runs of the inbox partitions this process owns.

    Args:
        settings: servers, topic prefix.
        registry: the workflows (and steps) of the loaded module.
        cache_size: live runs kept per partition (0 = evict after every input: always replay).
        clock: source of ``now`` handed to the engine.
        checkpoint_interval: seconds between restore checkpoints written to the state topic.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        cache_size: int = 10_000,
        clock: Clock | None = None,
        records: RecordCodec | None = None,
        checkpoint_interval: float = 2.0,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.topics = Topics(settings.topic_prefix)
        self.group = f"{settings.topic_prefix}.orchestrator"
        self.cache_size = cache_size
        self.clock = clock or SystemClock()
        self.records = records or RecordCodec(secret=settings.secret)
        self.stats = OrchestratorStats()
        self.partitions: dict[int, PartitionLogic] = {}
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._adopting: dict[int, asyncio.Event] = {}
        self._checkpoint_due: dict[int, float] = {}
        self.checkpoint_interval = checkpoint_interval
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check (or create) the state topic, join the consumer group and start processing in the background.

        Raises:
            InternalTopicError: the inbox is missing, or the state topic is not compacted or has another
                partition count than the inbox.
        """
        await ensure_internal_topic(self.settings.bootstrap, self.topics, "state", alongside="inbox")
        self._consumer = consumer(self.settings.bootstrap, group_id=self.group, max_poll_records=1000)
        self._consumer.subscribe([self.topics.inbox], listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._loop(), name="kflow-orchestrator")

    async def stop(self) -> None:
        """Finish the batch in flight, leave the group, close the producers."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        for number in list(self._producers):
            await self._drop(number)

    @property
    def _inbox(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("Orchestrator.start() was not called")
        return self._consumer

    async def run_until(self, stop: asyncio.Event) -> None:
        """``start``, wait for ``stop`` (or a crash of the loop), ``stop``."""
        await serve(self.start, self.stop, lambda: [] if self._task is None else [self._task], stop)

    async def _loop(self) -> None:
        while True:
            batches = await self._inbox.getmany(timeout_ms=500)
            if batches:
                await asyncio.gather(*(self._process(tp, messages) for tp, messages in batches.items()))

    async def _process(self, tp: TopicPartition, messages: list[Any]) -> None:
        # aiokafka may hand out records of a new assignment before (or while) the rebalance listener runs.
        await self._ensure_adopted(tp.partition)
        logic, txn_producer = self.partitions.get(tp.partition), self._producers.get(tp.partition)
        if logic is None or txn_producer is None:
            return  # revoked meanwhile: the new owner re-reads from the committed offset
        now = self.clock.now_ms()
        outputs: list[Output] = []
        for message in messages:
            outputs.extend(logic.process(message.key, message.value, message.offset, now))
        # Invariant: computed before this batch's sends, the checkpoint is at most the offset any run started
        # in this batch gets (the previous transaction is fully acknowledged, so history_end is the log end).
        if time.monotonic() >= self._checkpoint_due.get(tp.partition, 0.0):
            self._checkpoint_due[tp.partition] = time.monotonic() + self.checkpoint_interval
            outputs.append(logic.checkpoint_output(now))
        try:
            async with txn_producer.transaction():
                for out in outputs:
                    sent = await txn_producer.send(
                        self.topics.name(out.topic), out.value, key=out.key, partition=out.partition
                    )
                    if out.topic == "history":
                        sent.add_done_callback(_observer(logic, out.key.decode()))
                await txn_producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(messages[-1].offset + 1, "")}, self.group
                )
        except KafkaError as exc:
            # The in-memory state already moved on; Kafka did not. Rebuild from Kafka's truth.
            log.error("transaction for %s failed (%r): restoring the partition", tp, exc)
            await self._reset(tp)
            return
        self.stats.records += len(messages)
        self.stats.transactions += 1
        self.stats.outputs += len(outputs)

    async def _reset(self, tp: TopicPartition) -> None:
        self.stats.resets += 1
        await self._drop(tp.partition)
        await self._ensure_adopted(tp.partition)
        committed = await self._inbox.committed(tp)
        if committed is None:
            await self._inbox.seek_to_beginning(tp)
        else:
            self._inbox.seek(tp, committed)

    async def _ensure_adopted(self, number: int) -> None:
        """Adopt partition ``number`` unless it is adopted already (or being adopted: then wait)."""
        if number in self.partitions:
            return
        adopting = self._adopting.get(number)
        if adopting is not None:
            await adopting.wait()
            return
        if TopicPartition(self.topics.inbox, number) in self._inbox.assignment():
            await self._adopt(number)

    async def _adopt(self, number: int) -> None:
        """Fence the partition's previous owner, then read its history back into memory."""
        adopting = self._adopting[number] = asyncio.Event()
        try:
            await self._restore(number)
        finally:
            del self._adopting[number]
            adopting.set()

    async def _restore(self, number: int) -> None:
        txn_producer = producer(
            self.settings.bootstrap, transactional_id=f"{self.settings.topic_prefix}.orchestrator.{number}"
        )
        # Invariant: init_transactions (in start) aborts a zombie's open transaction *before* we read
        # history, so nothing can commit behind the state we rebuild.
        await txn_producer.start()
        self._producers[number] = txn_producer
        limits = EventLimits(soft=self.settings.event_soft_limit, hard=self.settings.event_hard_limit)
        logic = PartitionLogic(self.registry, self.records, self.topics.inbox, number, self.cache_size, limits)
        started = time.perf_counter()
        checkpoint: int | None = None
        state_records = 0
        async for message in self._read(self.topics.state, number, None):
            state_records += 1
            try:
                found = logic.restore_state(message.key or b"", message.value)
            except SchemaError as exc:
                log.error(
                    "unreadable state record %s[%d]@%d skipped: %s", self.topics.state, number, message.offset, exc
                )
                continue
            checkpoint = found if found is not None else checkpoint
        count = 0
        async for message in self._read(self.topics.history, number, checkpoint):
            logic.history_end = message.offset + 1
            try:
                event = self.records.decode(message.value)
            except SchemaError as exc:
                log.error(
                    "unreadable history record %s[%d]@%d skipped: %s", self.topics.history, number, message.offset, exc
                )
                continue
            self.stats.history_read += 1
            if isinstance(event, HISTORY_EVENT_TYPES) and logic.restore(cast(HistoryEvent, event), message.offset):
                count += 1
        logic.history_end = max(logic.history_end, checkpoint or 0)
        markers = logic.settle_unmarked(checkpointed=checkpoint is not None)
        if markers:  # finished before RunMarkers existed: mark them, so checkpoints can skip their history
            async with txn_producer.transaction():
                for out in markers:
                    await txn_producer.send(
                        self.topics.name(out.topic), out.value, key=out.key, partition=out.partition
                    )
        self.partitions[number] = logic
        self.stats.restored_events += count
        self.stats.restore_seconds += time.perf_counter() - started
        log.info(
            "partition %d adopted: %d running and %d finished runs (%d state records), %d events restored "
            "from offset %d in %.2fs",
            number,
            len(logic.histories),
            len(logic.finished),
            state_records,
            count,
            checkpoint or 0,
            time.perf_counter() - started,
        )

    async def _read(self, topic: str, number: int, start: int | None) -> AsyncIterator[Any]:
        """Committed records of one partition from ``start`` (None: the beginning) to its current end."""
        reader = consumer(self.settings.bootstrap, max_poll_records=5000)
        await reader.start()
        try:
            tp = TopicPartition(topic, number)
            reader.assign([tp])
            if start is None:
                await reader.seek_to_beginning(tp)
            else:
                reader.seek(tp, start)
            end = (await reader.end_offsets([tp]))[tp]
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    yield message
        finally:
            await reader.stop()

    async def _drop(self, number: int) -> None:
        logic = self.partitions.pop(number, None)
        if logic is not None:
            logic.cache.clear()
        txn_producer = self._producers.pop(number, None)
        if txn_producer is not None:
            await txn_producer.stop()


def _observer(logic: PartitionLogic, run_id: str) -> Callable[[asyncio.Future[Any]], None]:
    def observe(sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            logic.observe(run_id, sent.result().offset)

    return observe


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            await self.orchestrator._drop(tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka awaits this before fetching, so no inbox record is processed before its state exists.
        for tp in assigned:
            await self.orchestrator._ensure_adopted(tp.partition)
