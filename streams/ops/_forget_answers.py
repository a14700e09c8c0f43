"""The orchestrator's answers to the ``ForgetRun`` records of ``kflow compact``: the compaction marks a run compacted
and purges its history only once the orchestrator of this topic prefix confirmed it forgot the run.

The orchestrator answers every ``ForgetRun`` on the run's partition (``streams.processors._partition_logic``):

- **confirmed**: the run's ``RunMarker`` tombstoned on ``<prefix>.state`` (or, for a run started with an idempotency
  key, replaced by a ``forgotten`` marker, written again for a repeated ``ForgetRun``);
- **refused**: a dead letter of the ``ForgetRun`` on ``<prefix>.dlq``, with the reason: the run is still running,
  or it is not a finished run of that partition (a run of another prefix sharing the keyspace, or one forgotten by an
  earlier pass whose answer this tool did not see).

The answers are read, read-committed, from the end offsets both topics had before the records were sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import Codec, SchemaError
from streams._kafka_target import KafkaTarget
from streams._topics import Topics
from streams.kafka import close_consumer, consumer

FORGOTTEN = "forgotten"
NO_ANSWER = "the orchestrator did not answer"
"""How the reason of a run whose ``ForgetRun`` got no answer in time starts."""


@dataclass(frozen=True, slots=True)
class SentForget:
    """Where a ``ForgetRun`` was written: its run, inbox partition and offset."""

    run_id: str
    partition: int
    offset: int


class ForgetAnswers:
    """Reads the answers to ``ForgetRun`` records from ``.state`` and ``.dlq`` (one consumer, started at first use).

    Args:
        target: the Kafka connection (a ``KafkaTarget``, or bootstrap servers).
        topics: the topic names of the prefix.
        codec: the schema codec (markers and dead letters are read as Avro records).
    """

    def __init__(self, target: KafkaTarget | str, topics: Topics, codec: Codec) -> None:
        self._target = target
        self._topics = topics
        self._codec = codec
        self._reader: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> ForgetAnswers:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the consumer (if it was started)."""
        if self._reader is not None:
            await close_consumer(self._reader)
            self._reader = None

    async def mark(self, partitions: Iterable[int]) -> dict[TopicPartition, int]:
        """The end offsets of these partitions of ``.state`` and ``.dlq`` now (before the records are sent)."""
        reader = await self._started()
        tps = [TopicPartition(topic, p) for topic in (self._topics.state, self._topics.dlq) for p in partitions]
        ends: dict[TopicPartition, int] = await reader.end_offsets(tps)
        return ends

    async def wait(self, sent: list[SentForget], marks: dict[TopicPartition, int], timeout: float) -> dict[str, str]:
        """Read from ``marks`` until every run in ``sent`` has its answer, or ``timeout`` seconds passed.

        Returns:
            Why each run that was not confirmed was not (its dead letter's reason, or that no answer came in time);
            a confirmed run is not in it.
        """
        reader = await self._started()
        reader.assign(list(marks))
        for tp, offset in marks.items():
            reader.seek(tp, offset)
        pending = {forget.run_id for forget in sent}
        at = {(forget.partition, forget.offset): forget.run_id for forget in sent}
        refused: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending and (left := deadline - loop.time()) > 0:
            batch = await reader.getmany(timeout_ms=max(1, int(min(left, 0.5) * 1000)))
            for tp, messages in batch.items():
                for message in messages:
                    if tp.topic == self._topics.state:
                        run_id = (message.key or b"").decode("utf-8", "replace")
                        if run_id in pending and self._forgets(message.value):
                            pending.discard(run_id)
                    elif (answer := self._refusal(message.value, at)) is not None and answer[0] in pending:
                        pending.discard(answer[0])
                        refused[answer[0]] = answer[1]
        for run_id in pending:
            refused[run_id] = f"{NO_ANSWER} within {timeout:g} s (is `kflow processor` running?)"
        return refused

    def _forgets(self, value: bytes | None) -> bool:
        """Whether a state record for the run says it was forgotten: a tombstone, or a ``forgotten`` marker."""
        if value is None:
            return True
        try:
            decoded = self._codec.decode(value)
        except SchemaError:
            return False
        return decoded.name == "RunMarker" and decoded.record.get("status") == FORGOTTEN

    def _refusal(self, value: bytes | None, at: dict[tuple[int, int], str]) -> tuple[str, str] | None:
        """(run id, reason) of a dead letter of one of the sent ``ForgetRun`` records, else None."""
        try:
            decoded = self._codec.decode(value or b"")
        except SchemaError:
            return None
        record = decoded.record
        if decoded.name != "DeadLetter" or record.get("topic") != self._topics.inbox:
            return None
        partition, offset = record.get("partition"), record.get("offset")
        run_id = at.get((partition, offset)) if isinstance(partition, int) and isinstance(offset, int) else None
        return None if run_id is None else (run_id, str(record.get("reason")))

    async def _started(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = consumer(self._target)
            try:
                await reader.start()
            except BaseException:
                await close_consumer(reader)
                raise
            self._reader = reader
        return self._reader
