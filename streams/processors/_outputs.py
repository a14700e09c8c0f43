"""What processors send: a record for a topic, keyed by run id, already encoded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.runtime import ExecuteStep
from schemas import Codec
from streams._headers import REROUTED_FROM, header
from streams.processors._metrics import count_dead_letter


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce: topic suffix (``history``, ``tasks``, …), raw UTF-8 key, encoded value.

    ``value`` None is a tombstone (compacted topics only); ``partition`` None lets the key choose it;
    ``headers``: Kafka record headers (name, value), e.g. ``REROUTED_FROM`` on a record moved to its partition;
    ``command``: the ``ExecuteStep`` a ``tasks`` record encodes, when its producer had it (local steps read it
    instead of decoding ``value`` again).
    """

    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    command: ExecuteStep | None = field(default=None, compare=False, repr=False)

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``AIOKafkaProducer.send`` for this record: key, partition, headers."""
        return {"key": self.key, "partition": self.partition, "headers": list(self.headers) or None}


def rerouted(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether a record with these headers was moved to its partition by an orchestrator already."""
    return header(headers, REROUTED_FROM) is not None


def dead_letter(
    codec: Codec,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    reason: str,
    error_type: str,
) -> Output:
    """A ``DeadLetter`` for a record that could not be processed; keyed like the original record (counted in
    ``kflow_dead_letters_total``)."""
    count_dead_letter(topic, reason)
    record = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "value": value,
        "reason": reason,
        "error_type": error_type,
        "failed_at": int(time.time() * 1000),
    }
    return Output("dlq", key or b"", codec.encode("DeadLetter", record))


def retrieved(sent: asyncio.Future[Any]) -> None:
    """A send's done callback that retrieves its error (a failed transaction fails them all: the batch is redone)."""
    if not sent.cancelled():
        sent.exception()


def observer(observe: Callable[[str, int], None], run_id: str) -> Callable[[asyncio.Future[Any]], None]:
    """A history send's done callback: ``observe(run_id, offset)`` once the record is written."""

    def done(sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            observe(run_id, sent.result().offset)

    return done
