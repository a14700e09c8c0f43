"""What the timer processor reads and reports: a ``.timers`` record parsed (or rejected with the reason its dead
letter carries), and its counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.runtime import CancelTimer, StartTimer
from schemas import RecordCodec, SchemaError
from streams._tracing import record_span
from streams.processors._timer_index import ArmedTimer

LATENESS_SAMPLES = 1000
"""How many of the latest fires `TimerStats.lateness_ms` keeps."""


@dataclass(frozen=True, slots=True)
class TimerStats:
    """A snapshot of the timer processor's counters.

    Attributes:
        pending: timers armed in the indexes of the partitions this process owns.
        fired: ``TimerFired`` records produced since start (re-fires included).
        dead_lettered: ``.timers`` records sent to the dead-letter topic since start.
        lateness_ms: ``fired_at - fire_at`` of the latest fires (at most `LATENESS_SAMPLES`), oldest first.
        restored: timers restored from the changelog into rebuilt indexes since start.
        restore_seconds: time spent rebuilding indexes from the changelog since start.
    """

    pending: int
    fired: int
    dead_lettered: int
    lateness_ms: tuple[int, ...]
    restored: int = 0
    restore_seconds: float = 0.0


class Rejected(Exception):
    """A ``.timers`` record that cannot be applied; it goes to the dead-letter topic."""

    def __init__(self, reason: str, error_type: str = "kflow.InvalidRecord") -> None:
        super().__init__(reason)
        self.reason, self.error_type = reason, error_type


def parse_timer_record(records: RecordCodec, timers_topic: str, value: bytes | None) -> StartTimer | CancelTimer:
    """The ``StartTimer`` or ``CancelTimer`` in ``value``.

    Raises:
        Rejected: a tombstone, undecodable bytes, or another record type (with the dead letter's reason).
    """
    if value is None:
        raise Rejected("a record without a value (tombstone)")
    try:
        record = records.decode(value)
    except SchemaError as exc:
        raise Rejected(str(exc), f"{type(exc).__module__}.{type(exc).__qualname__}") from exc
    if not isinstance(record, (StartTimer, CancelTimer)):
        raise Rejected(
            f"{type(record).__name__} does not belong on {timers_topic} (only StartTimer and CancelTimer do)"
        )
    return record


def record_timer_spans(timers: Sequence[ArmedTimer], fired_at: int) -> None:
    """A ``Timer:<kind>`` span for each fired timer of a traced run (its trace context the parent), from when it was
    armed (its due time when that is unknown) to ``fired_at``."""
    for t in timers:
        if t.trace:
            attributes: dict[str, str | int] = {"kflow.run_id": t.run_id, "kflow.timer_id": t.timer_id}
            attributes["kflow.position"] = t.position
            record_span(f"Timer:{t.kind}", t.trace, attributes, start_ms=t.requested_at or t.fire_at, end_ms=fired_at)
