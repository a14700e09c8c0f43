"""What processors send: a record for a topic, keyed by run id, already encoded."""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas import Codec


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce: topic suffix (``history``, ``tasks``, …), raw UTF-8 key, encoded value.

    ``value`` None is a tombstone (compacted topics only); ``partition`` None lets the key choose it.
    """

    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None


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
