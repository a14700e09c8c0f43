"""Reading a few partitions with a short-lived consumer: to their current end, or watching for an answer.

A client that sends a command and waits for the orchestrator's answer (a hook payload, a schedule command)
positions a ``PartitionWatch`` at the end of the partitions the answer will be written to *before* it
produces the command, so the answer, written after the send, cannot be missed.

A fresh read-committed consumer per watch or read: a consumer shared across assignments once raced with
aiokafka's offset-reset bookkeeping when a scan was cancelled mid-seek.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Final, Self, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams import kafka
from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_POLL_S: Final = 0.5  # longest single fetch, so a deadline is kept to within about this
_STALL_S: Final = 30.0  # a read to the end that makes no progress this long fails

Match = Callable[[TopicPartition, bytes | None, bytes | None], _T | None]
"""Looks at one record (partition, key, value; value None for a tombstone): the answer, or None."""


class PartitionWatch:
    """A read-committed consumer of a few partitions, positioned at their current end on entering.

    Use as ``async with PartitionWatch(...) as watch`` *before* producing the command whose answer
    ``watch.first(match, deadline)`` then waits for.
    """

    def __init__(self, bootstrap: KafkaTarget | str, partitions: Sequence[TopicPartition]) -> None:
        self._target, self._partitions = KafkaTarget.of(bootstrap), list(partitions)
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Self:
        consumer = kafka.consumer(self._target)
        try:  # start() inside: a consumer cancelled or failing while it starts is closed too
            with kafka_errors(self._target, f"watching {_names(self._partitions)}"):
                await consumer.start()
                consumer.assign(self._partitions)
                # Invariant: read before the send, so the answer lies at or after these offsets.
                for tp, offset in (await consumer.end_offsets(self._partitions)).items():
                    consumer.seek(tp, offset)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def first(self, match: Match[_T], deadline: float) -> _T | None:
        """The first answer ``match`` finds in the records read from now on, or None when none was read
        by ``deadline`` (event loop time)."""
        consumer = self._consumer
        assert consumer is not None, "enter the watch first"
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            try:
                batch = await consumer.getmany(timeout_ms=max(1, int(min(remaining, _POLL_S) * 1000)))
            except KafkaError as exc:
                log.warning("partition watch: %r (retrying)", exc)
                await asyncio.sleep(min(_POLL_S, max(0.0, deadline - loop.time())))
                continue
            for tp, messages in batch.items():
                for message in messages:
                    if (found := match(tp, message.key, message.value)) is not None:
                        return found
        return None


async def read_to_end(
    bootstrap: KafkaTarget | str,
    partitions: Sequence[TopicPartition],
    visit: Callable[[TopicPartition, bytes | None, bytes | None], None],
) -> None:
    """Call ``visit(partition, key, value)`` for every committed record of ``partitions``, one partition after
    the other, from its beginning to its end offset when its read begins, in offset order.

    Raises:
        TimeoutError: a partition made no progress for 30 s.
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(bootstrap, f"reading {_names(partitions)}"):
        await _read_to_end(KafkaTarget.of(bootstrap), partitions, visit)


def _names(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


async def _read_to_end(
    target: KafkaTarget,
    partitions: Sequence[TopicPartition],
    visit: Callable[[TopicPartition, bytes | None, bytes | None], None],
) -> None:
    for tp in partitions:
        async for message in kafka.read_partition(target, tp, None, _STALL_S):
            visit(tp, message.key, message.value)
