"""What processors send: a record for a topic, keyed by run id, already encoded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas import Codec
from streams._headers import REROUTED_FROM, header


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce: topic suffix (``history``, ``tasks``, …), raw UTF-8 key, encoded value.

    ``value`` None is a tombstone (compacted topics only); ``partition`` None lets the key choose it;
    ``headers``: Kafka record headers (name, value), e.g. ``REROUTED_FROM`` on a record moved to its partition.
    """

    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

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
    """A ``DeadLetter`` for a record that could not be processed; keyed like the original record."""
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
