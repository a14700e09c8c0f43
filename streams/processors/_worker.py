"""The step worker: runs ``ExecuteStep`` commands from ``<prefix>.tasks`` and reports ``StepResult``s.

Delivery is at-least-once. A task's offset is committed only once the result of that task (and of every
earlier task of its partition) is acknowledged by the broker, so a worker killed mid-step leaves its
commands uncommitted and the group hands them to another worker. The orchestrator records each
(position, attempt) result once, so a step re-run after a crash is harmless to the run's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from engine import Registry, runtime
from engine.runtime import ExecuteStep, StepResult, SystemClock
from schemas import RecordCodec, RecordSigner, SchemaError
from streams import kafka
from streams._logs import LOG_CONTEXT
from streams._partition_check import check_partition_counts
from streams._schema_topic import join_schema_topic
from streams._settings import Settings
from streams._topics import Topics
from streams._tracing import Carrier, carrier, consumer_span
from streams.processors._metrics import count_step
from streams.processors._offsets import OffsetTracker
from streams.processors._outputs import Output, dead_letter
from streams.processors._serve import ProgressWatch, supervise
from streams.processors._step_results import attempt_attributes, encode_result, unsendable

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.1
"""How often acknowledged task offsets are committed."""
COMMIT_TIMEOUT_S = 15.0
"""Longest an offset commit may take (aiokafka retries one without limit); the offsets are retried later."""


@dataclass(slots=True)
class WorkerStats:
    """Counters of one worker: step attempts run, attempts that failed, records sent to the dead letters."""

    steps_run: int = 0
    steps_failed: int = 0
    dead_letters: int = 0


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, worker: StepWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker._commit(revoked)
        self._worker._tracker.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("worker %s assigned %s", self._worker.worker_id, sorted(tp.partition for tp in assigned))


class StepWorker:
    """Consumes ``<prefix>.tasks`` in the group ``<prefix>.workers`` and runs the steps it names.

    Args:
        settings: servers and topic prefix.
        registry: the steps this worker can run.
        concurrency: most step attempts running at once.
        worker_id: name written into every ``StepResult.worker`` (default: host, pid and a random tag).
        records: codec for records and payloads (default: the JSON payload codecs allowing the payload classes
            of ``registry``, ``settings.secret`` to read signed cloudpickle arguments).

    With ``settings.secret`` set, every ``StepResult`` carries a MAC (``schemas.RecordSigner``): the orchestrator
    then refuses results that do not.
        shutdown_timeout: seconds ``stop()`` lets running steps finish before abandoning them (their
            commands are then redelivered).
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        concurrency: int = 32,
        worker_id: str | None = None,
        records: RecordCodec | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.settings = settings
        self.registry = registry
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.records = records or RecordCodec(secret=settings.secret, types=registry.payload_types)
        self._signer = None if settings.secret is None else RecordSigner(settings.secret)
        self.shutdown_timeout = shutdown_timeout
        self.stats = WorkerStats()
        self.topics = Topics(settings.topic_prefix)
        self._clock = SystemClock()
        self._tracker = OffsetTracker()
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._watch = ProgressWatch()
        self.name = "worker"
        self.group = f"{settings.topic_prefix}.workers"

    async def start(self) -> None:
        """Connect, join the worker group and start consuming."""
        await join_schema_topic(self.settings.kafka_target(), self.topics, self.records.codec)
        await check_partition_counts(self.settings.kafka_target(), self.topics, "the step worker")
        producer = kafka.producer(self.settings.kafka_target())
        consumer = kafka.consumer(
            self.settings.kafka_target(), group_id=self.group, instance_id=self.settings.instance_id
        )
        self._producer, self._consumer = producer, consumer  # stop() closes them, also after a failed start
        await producer.start()
        await consumer.start()
        consumer.subscribe([self.topics.tasks], listener=_CommitOnRevoke(self))
        self._watch.reset()
        self._tracker, self._stopping = OffsetTracker(), False
        self._loops = [
            asyncio.create_task(self._fetch_loop(), name=f"kflow-worker-fetch-{self.worker_id}"),
            asyncio.create_task(self._commit_loop(), name=f"kflow-worker-commit-{self.worker_id}"),
        ]
        log.info("step worker %s started on %s", self.worker_id, self.topics.tasks)

    async def stop(self) -> None:
        """Stop fetching, let running steps finish (up to ``shutdown_timeout``), commit, disconnect."""
        self._stopping = True
        for loop_task in self._loops:
            loop_task.cancel()
        for outcome in await asyncio.gather(*self._loops, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("worker loop failed: %r", outcome)
        self._loops = []
        if self._inflight:
            _, still_running = await asyncio.wait(set(self._inflight), timeout=self.shutdown_timeout)
            for task in still_running:
                task.cancel()  # never acknowledged: its command stays uncommitted and is redelivered
            await asyncio.gather(*still_running, return_exceptions=True)
        if self._consumer is not None:
            await self._commit(self._consumer.assignment())
            await kafka.close_consumer(self._consumer)
            self._consumer = None
        if self._producer is not None:
            await kafka.close_producer(self._producer)
            self._producer = None
        log.info("step worker %s stopped (%s)", self.worker_id, self.stats)

    def loops(self) -> Collection[asyncio.Task[None]]:
        """The fetch and commit loops (while started)."""
        return list(self._loops)

    async def health(self) -> str | None:
        """A reason to rebuild the Kafka clients (see ``streams.processors._serve``), or None."""
        return None if self._consumer is None else await self._watch.check(self._consumer, self.group)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, reconnecting through broker faults (``streams.processors._serve``)."""
        await supervise(self, stop)

    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping:
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                # Paused partitions keep their place; polling them keeps this member in the group.
                self._slot_freed.clear()
                consumer.pause(*consumer.assignment())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 1.0)
                batch = await consumer.getmany(timeout_ms=0, max_records=1)
            else:
                if consumer.paused():
                    consumer.resume(*consumer.paused())
                batch = await consumer.getmany(timeout_ms=100, max_records=free)
            self._watch.polled()
            for tp, messages in batch.items():
                for message in messages:
                    self._dispatch(tp, message)

    def _dispatch(self, tp: TopicPartition, message: Any) -> None:
        self._tracker.add(tp, message.offset)
        trace = carrier(message.headers)
        task = asyncio.create_task(self._handle(tp, message.offset, message.key, message.value, trace))
        self._inflight.add(task)
        task.add_done_callback(self._release)

    def _release(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    async def _commit_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await self._commit(consumer.assignment())

    async def _commit(self, partitions: Iterable[TopicPartition]) -> None:
        if self._consumer is None:
            return
        offsets = self._tracker.take_committable(partitions)
        if not offsets:
            return
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_S):
                await self._consumer.commit(offsets)
        except (KafkaError, TimeoutError) as exc:  # e.g. a rebalance in progress: retried, or redelivered
            log.warning("worker %s could not commit %s: %r", self.worker_id, offsets, exc)
            self._tracker.restore(offsets)

    async def _handle(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, trace: Carrier = ()
    ) -> None:
        try:
            outputs = await self._outputs(tp, offset, key, value, trace)
        except Exception as exc:  # a worker bug must not stall the partition: park the task with the reason
            log.exception("task %s[%d]@%d failed in the worker", tp.topic, tp.partition, offset)
            outputs = [self._dead(tp, offset, key, value, f"worker failed: {exc!r}", exc)]
        for output in outputs:
            await self._send(output)
        self._tracker.done(tp, offset)

    async def _outputs(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, trace: Carrier = ()
    ) -> list[Output]:
        """The ``StepResult`` of one task (in a ``RunStep:<step>`` span, a child of ``trace``: the run's context, which
        the result carries back), or dead letters."""
        try:
            cmd = self.records.decode(value)
        except SchemaError as exc:
            return self._undecodable(tp, offset, key, value, exc)
        if not isinstance(cmd, ExecuteStep):
            return [
                self._dead(
                    tp,
                    offset,
                    key,
                    value,
                    f"{type(cmd).__name__} does not belong on the tasks topic (only ExecuteStep)",
                    None,
                )
            ]
        context = {
            "run_id": cmd.run_id,
            "workflow": cmd.workflow_name,
            "step": cmd.step_name,
            "partition": tp.partition,
        }
        token = LOG_CONTEXT.set(context)  # the step's own log lines carry them (--log-format json)
        try:
            with consumer_span(f"RunStep:{cmd.step_name}", trace, attempt_attributes(cmd)) as span:
                result = await runtime.execute_step(self.registry, cmd, self._clock, worker=self.worker_id)
                self.stats.steps_run += 1
                count_step(cmd.step_name, cmd.attempt, result.ok, (result.finished_at - result.started_at) / 1000)
                encoded, sent = self._encode_result(result, cmd.step_name)
                if sent.error is not None:
                    span.failed(sent.error.type, sent.error.message, sent.error.traceback)
        finally:
            LOG_CONTEXT.reset(token)
        return [Output("inbox", cmd.run_id.encode(), encoded, headers=trace)]

    def _signed(self, result: StepResult) -> StepResult:
        return result if self._signer is None else self._signer.sign(result)

    def _encode_result(self, result: StepResult, step_name: str) -> tuple[bytes, StepResult]:
        """The result encoded (signed), and the result that is: a failure when the step's result cannot be sent."""
        encoded, result = encode_result(self.records, self._signer, result, step_name)
        if not result.ok:
            self.stats.steps_failed += 1
        return encoded, result

    def _undecodable(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, exc: SchemaError
    ) -> list[Output]:
        """A dead letter; plus a failed result when the envelope names a step (bad arguments payload)."""
        outputs = [self._dead(tp, offset, key, value, f"undecodable record: {exc}", exc)]
        try:
            envelope = self.records.codec.decode(value)
        except SchemaError:
            return outputs
        if envelope.name == "ExecuteStep":
            fields = envelope.record
            now = self._clock.now_ms()
            error = unsendable(exc, f"the arguments of step {fields['step_name']!r} cannot be decoded: {exc}")
            failed = StepResult(
                run_id=str(fields["run_id"]),
                position=int(str(fields["position"])),
                attempt=int(str(fields["attempt"])),
                ok=False,
                error=error,
                worker=self.worker_id,
                started_at=now,
                finished_at=now,
            )
            self.stats.steps_failed += 1
            outputs.append(Output("inbox", failed.run_id.encode(), self.records.encode(self._signed(failed))))
        return outputs

    def _dead(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, reason: str, exc: Exception | None
    ) -> Output:
        log.warning("dead letter from %s[%d]@%d: %s", tp.topic, tp.partition, offset, reason)
        self.stats.dead_letters += 1
        error_type = "kflow.InvalidRecord" if exc is None else runtime.error_info(exc, with_traceback=False).type
        return dead_letter(
            self.records.codec,
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            key=key,
            value=value,
            reason=reason,
            error_type=error_type,
        )

    async def _send(self, output: Output) -> None:
        """Produce and wait for the acknowledgement, retrying broker errors until it is acknowledged."""
        producer = self._producer
        assert producer is not None
        delay = 0.1
        while True:
            try:
                await producer.send_and_wait(self.topics.name(output.topic), output.value, **output.options)
                return
            except KafkaError as exc:
                log.warning(
                    "worker %s could not send to %s (retrying in %.1fs): %r", self.worker_id, output.topic, delay, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
