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
from collections import deque
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from engine import EventLimits, Registry
from engine.runtime import Clock, SystemClock
from schemas import RecordCodec, RecordSigner
from streams._logs import LOG_CONTEXT
from streams._partition_check import check_partition_counts
from streams._schema_topic import join_schema_topic
from streams._settings import Settings
from streams._topics import Topics, ensure_internal_topic
from streams._tracing import carrier
from streams.kafka import close_consumer, close_producer, consumer, producer
from streams.processors._local_steps import LocalBounds, local_steps
from streams.processors._metrics import ADOPTION_SECONDS, TRANSACTION_ABORTS, TRANSACTION_SECONDS
from streams.processors._orchestrator_stats import OrchestratorStats
from streams.processors._outputs import Output, observer, rerouted, retrieved
from streams.processors._partition_logic import PartitionLogic
from streams.processors._partition_restore import read_back
from streams.processors._partition_state import SNAPSHOT_AFTER_RECORDS, SNAPSHOT_MIN_AGE_MS
from streams.processors._serve import FAULTS, ProgressWatch, supervise

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_S = 30.0
"""Longest one batch's transaction may take; past it the partition's producer is abandoned and re-adopted."""


class Orchestrator:
    """Runs workflow code for the runs of the inbox partitions this process owns.

    Args:
        settings: servers, topic prefix.
        registry: the workflows (and steps) of the loaded module.
        cache_size: live runs kept per partition (0 = evict after every input: always replay).
        clock: source of ``now`` handed to the engine.
        checkpoint_interval: seconds between restore checkpoints written to the state topic.
        snapshot_after: history records a running run may lie behind the end before it gets a ``RunSnapshot``
            (so one long-lived run does not make every restore read the history back to its start);
            ``snapshot_min_age_ms``: only runs running that long are snapshotted.
        run_steps: run the first attempt of every step of ``registry`` here (``kflow processor --run-steps``);
            steps declared ``@step(local=True)`` run here anyway (``streams.processors._local_steps``).
        local_bounds: the bounds of that work (default ``LocalBounds()``). While a batch's local steps run, the
            next poll of every partition waits (keep them short).
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
        snapshot_after: int = SNAPSHOT_AFTER_RECORDS,
        snapshot_min_age_ms: int = SNAPSHOT_MIN_AGE_MS,
        run_steps: bool = False,
        local_bounds: LocalBounds | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.topics = Topics(settings.topic_prefix)
        self.group = f"{settings.topic_prefix}.orchestrator"
        self.cache_size = cache_size
        self.clock = clock or SystemClock()
        self.records = records or RecordCodec(secret=settings.secret, types=registry.payload_types)
        self.stats = OrchestratorStats()
        self.local = local_steps(registry, self.records, self.clock, settings, run_steps, local_bounds)
        self.partitions: dict[int, PartitionLogic] = {}
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._adopting: dict[int, asyncio.Task[None]] = {}
        self._adoptions: dict[int, deque[float]] = {}  # recent adoption times, to spot a shared --instance-id
        # Invariant: held while a partition's batch is processed and its transaction runs, and while the
        # partition is dropped, so a producer is never stopped under an open transaction (a revoke waits).
        self._locks: dict[int, asyncio.Lock] = {}
        self._watch = ProgressWatch()
        self._stopping = False  # set while stopping: a rebalance callback then adopts nothing
        self.name = "orchestrator"
        self._checkpoint_due: dict[int, float] = {}
        self.checkpoint_interval = checkpoint_interval
        self.snapshot_after, self.snapshot_min_age_ms = snapshot_after, snapshot_min_age_ms
        self._consumer: AIOKafkaConsumer | None = None
        self.inbox_partitions: int | None = None  # the shared partition count, checked at start
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check (or create) the state topic, join the consumer group and start processing in the background.

        Partitions are adopted in the background once assigned (paused until then), so a long restore never
        holds up the group's heartbeats.

        Raises:
            InternalTopicError: the inbox is missing, or the state topic is not compacted or has another
                partition count than the inbox.
        """
        target = self.settings.kafka_target()
        await ensure_internal_topic(target, self.topics, "state", alongside="inbox")
        await join_schema_topic(target, self.topics, self.records.codec)
        self.inbox_partitions = await check_partition_counts(target, self.topics, "the orchestrator")
        self._consumer = consumer(
            target, group_id=self.group, instance_id=self.settings.instance_id, max_poll_records=1000
        )
        self._consumer.subscribe([self.topics.inbox], listener=_Listener(self))
        self._watch.reset()
        self._stopping = False
        await self._consumer.start()
        self._task = asyncio.create_task(self._loop(), name="kflow-orchestrator")

    async def stop(self) -> None:
        """Stop processing (a batch in flight is abandoned: its transaction aborts), leave the group, close the
        producers. Bounded in time, also with the broker gone."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._adopting.values()):
            task.cancel()
        await asyncio.gather(*self._adopting.values(), return_exceptions=True)
        if self._consumer is not None:
            await close_consumer(self._consumer)
            self._consumer = None
        for number in list(self._producers):
            await self._drop(number)

    def loops(self) -> Collection[asyncio.Task[None]]:
        """The processing loop (while started)."""
        return [] if self._task is None else [self._task]

    async def health(self) -> str | None:
        """A reason to rebuild the Kafka clients (see ``streams.processors._serve``), or None."""
        if self._consumer is None:
            return None
        return await self._watch.check(self._consumer, self.group)

    async def readiness(self) -> str | None:
        """Why the orchestrator is not ready (an assigned partition not adopted yet), or None."""
        if self._consumer is None:
            return "not started"
        waiting = sorted({tp.partition for tp in self._consumer.assignment()} - set(self.partitions))
        return f"inbox partitions {waiting} not adopted yet" if waiting else None

    @property
    def _inbox(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("Orchestrator.start() was not called")
        return self._consumer

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, reconnecting through broker faults (``streams.processors._serve``)."""
        await supervise(self, stop)

    async def _loop(self) -> None:
        while True:
            batches = await self._inbox.getmany(timeout_ms=500)
            self._watch.polled()
            if batches:
                await asyncio.gather(*(self._process(tp, messages) for tp, messages in batches.items()))

    async def _process(self, tp: TopicPartition, messages: list[Any]) -> None:
        async with self._lock(tp.partition):
            logic, txn_producer = self.partitions.get(tp.partition), self._producers.get(tp.partition)
            if logic is None or txn_producer is None:
                if tp in self._inbox.assignment() and tp.partition not in self._adopting:
                    # Fetched before it was adopted (it is paused until then; a safety net): read it again later.
                    self._inbox.pause(tp)
                    self._inbox.seek(tp, messages[0].offset)
                    self._start_adopting(tp.partition)
                return  # else revoked meanwhile: the new owner re-reads from the committed offset
            now = self.clock.now_ms()
            outputs: list[Output] = []
            for m in messages:  # (in a task of its own: the log context ends with it)
                LOG_CONTEXT.set({"run_id": (m.key or b"").decode("utf-8", "replace"), "partition": tp.partition})
                trace = carrier(m.headers)
                outputs.extend(logic.process(m.key, m.value, m.offset, now, rerouted=rerouted(m.headers), trace=trace))
            LOG_CONTEXT.set({"partition": tp.partition})
            if self.local is not None:  # first attempts of local steps: run now, recorded in this transaction
                outputs = await self.local.settle(logic.process, outputs)
            # Invariant: computed before this batch's sends, the checkpoint is at most the offset any run started
            # in this batch gets (the previous transaction is fully acknowledged, so history_end is the log end).
            if time.monotonic() >= self._checkpoint_due.get(tp.partition, 0.0):
                self._checkpoint_due[tp.partition] = time.monotonic() + self.checkpoint_interval
                outputs.extend(logic.snapshot_outputs(now))  # before the checkpoint: they move it forward
                outputs.append(logic.checkpoint_output(now))
            began = time.perf_counter()
            try:
                async with asyncio.timeout(TRANSACTION_TIMEOUT_S):
                    await self._commit(txn_producer, logic, tp, messages[-1].offset + 1, outputs)
                TRANSACTION_SECONDS.observe(time.perf_counter() - began)
            except FAULTS as exc:
                TRANSACTION_ABORTS.inc()
                # The in-memory state already moved on; Kafka did not. Rebuild from Kafka's truth.
                log.error("transaction for %s failed (%r): restoring the partition", tp, exc)
                await self._reset(tp)
                return
        self.stats.records += len(messages)
        self.stats.transactions += 1
        self.stats.outputs += len(outputs)
        self.stats.count_histories(logic.histories for logic in self.partitions.values())

    async def _commit(
        self,
        txn_producer: AIOKafkaProducer,
        logic: PartitionLogic,
        tp: TopicPartition,
        next_offset: int,
        outputs: list[Output],
    ) -> None:
        """One transaction: the batch's outputs and its inbox offsets."""
        async with txn_producer.transaction():
            for out in outputs:
                sent = await txn_producer.send(self.topics.name(out.topic), out.value, **out.options)
                sent.add_done_callback(retrieved)  # a failed transaction fails them all: the batch is redone
                if out.topic == "history":
                    sent.add_done_callback(observer(logic.observe, out.key.decode()))
            await txn_producer.send_offsets_to_transaction({tp: OffsetAndMetadata(next_offset, "")}, self.group)

    async def _reset(self, tp: TopicPartition) -> None:
        """Forget the partition's state (the caller holds its lock), go back to its committed offset, adopt again.

        Raises:
            KafkaError, TimeoutError: the committed offset cannot be read (the loop ends; the supervisor rebuilds).
        """
        self.stats.resets += 1
        await self._drop_unlocked(tp.partition)
        if tp not in self._inbox.assignment():
            return
        self._inbox.pause(tp)
        async with asyncio.timeout(15):
            committed = await self._inbox.committed(tp)
        if committed is None:
            await self._inbox.seek_to_beginning(tp)
        else:
            self._inbox.seek(tp, committed)
        self._start_adopting(tp.partition)

    def _lock(self, number: int) -> asyncio.Lock:
        return self._locks.setdefault(number, asyncio.Lock())

    def _assigned(self, number: int) -> None:
        """Note that the group gave this member ``number`` (again): a static member given the same partition three
        times in 30 s shares its instance id with another process (they fence each other in turn)."""
        recent = self._adoptions.setdefault(number, deque(maxlen=3))
        recent.append(time.monotonic())
        if self.settings.instance_id and len(recent) == 3 and recent[-1] - recent[0] < 30:
            log.error(
                "inbox partition %d assigned 3 times in %.0f s: is instance id %s used by another process too? "
                "(--instance-id must be unique per process)",
                number,
                recent[-1] - recent[0],
                self.settings.instance_id,
            )

    def _start_adopting(self, number: int) -> None:
        """Adopt partition ``number`` in the background (it stays paused until adopted)."""
        if number in self.partitions or number in self._adopting or self._stopping:
            return
        self._adopting[number] = asyncio.create_task(self._adopt(number), name=f"kflow-adopt-{number}")

    async def _adopt(self, number: int) -> None:
        """Fence the partition's previous owner, read its state and history back, then resume fetching it.

        A broker fault while adopting is retried (the partition stays paused meanwhile); the supervisor's
        checks see a partition that never gets adopted as a partition that does not move.
        """
        tp = TopicPartition(self.topics.inbox, number)
        pause = 0.5
        try:
            while tp in self._inbox.assignment():
                try:
                    async with self._lock(number):
                        await self._restore(number)
                except FAULTS as exc:
                    log.warning("adopting inbox partition %d failed (%r); retrying in %.1f s", number, exc, pause)
                    async with self._lock(number):
                        await self._drop_unlocked(number)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 10.0)
                    continue
                if tp in self._inbox.assignment():
                    self._inbox.resume(tp)
                return
        finally:
            self._adopting.pop(number, None)

    async def _restore(self, number: int) -> None:
        txn_producer = producer(
            self.settings.kafka_target(), transactional_id=f"{self.settings.topic_prefix}.orchestrator.{number}"
        )
        # Invariant: init_transactions (in start) aborts a zombie's open transaction *before* we read
        # history, so nothing can commit behind the state we rebuild.
        self._producers[number] = txn_producer  # registered first: a stop during start() still closes it
        await txn_producer.start()
        limits = EventLimits(
            soft=self.settings.event_soft_limit,
            hard=self.settings.event_hard_limit,
            activation_steps=self.settings.activation_steps,
            event_warning_interval=self.settings.event_warning_interval,
            early_hook_bytes=self.settings.early_hook_bytes,
        )
        logic = PartitionLogic(
            self.registry,
            self.records,
            self.topics.inbox,
            number,
            self.cache_size,
            limits,
            self.snapshot_after,
            self.snapshot_min_age_ms,
            self.inbox_partitions,
            self.settings.live_history_bytes,
            signer=None if self.settings.secret is None else RecordSigner(self.settings.secret),
        )
        started = time.perf_counter()
        read = await read_back(self.settings.kafka_target(), self.topics, self.records, logic, number)
        self.stats.history_read += read.history_read
        checkpoint, count, state_records = read.checkpoint, read.events, read.state_records
        markers = logic.settle_unmarked(checkpointed=checkpoint is not None)
        if markers:  # finished before RunMarkers existed: mark them, so checkpoints can skip their history
            async with txn_producer.transaction():
                for out in markers:
                    await txn_producer.send(self.topics.name(out.topic), out.value, **out.options)
        self.partitions[number] = logic
        self.stats.count_histories(logic.histories for logic in self.partitions.values())
        self.stats.restored_events += count
        self.stats.restore_seconds += time.perf_counter() - started
        ADOPTION_SECONDS.observe(time.perf_counter() - started)
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
            extra={"partition": number},
        )

    async def _drop(self, number: int) -> None:
        """Forget partition ``number``: wait for its batch in flight, then close its producer."""
        async with self._lock(number):
            await self._drop_unlocked(number)

    async def _drop_unlocked(self, number: int) -> None:
        logic = self.partitions.pop(number, None)
        if logic is not None:
            logic.close()
        txn_producer = self._producers.pop(number, None)
        if txn_producer is not None:
            await close_producer(txn_producer)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            adopting = self.orchestrator._adopting.pop(tp.partition, None)
            if adopting is not None:
                adopting.cancel()
                await asyncio.gather(adopting, return_exceptions=True)
            await self.orchestrator._drop(tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Nothing is fetched from a partition before its state exists: paused here, resumed once adopted. The
        # adoption runs outside this listener, so the group's heartbeats go on during a long restore.
        orchestrator = self.orchestrator
        fresh = [tp for tp in assigned if tp.partition not in orchestrator.partitions]
        if fresh:
            orchestrator._inbox.pause(*fresh)
        for tp in fresh:
            orchestrator._assigned(tp.partition)
            orchestrator._start_adopting(tp.partition)
