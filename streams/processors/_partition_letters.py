"""What one inbox partition does with a record it does not apply: a dead letter, the failed completion of a start
it could not start, a record moved to the partition its key belongs to."""

from __future__ import annotations

import logging

from engine import runtime
from engine.runtime import StartWorkflow
from streams._headers import REROUTED_FROM
from streams._tracing import Carrier
from streams.kafka import partition_for
from streams.processors._failed_starts import StartFields, start_failed
from streams.processors._outputs import Output, dead_letter
from streams.processors._partition_state import PartitionState

log = logging.getLogger("streams.processors._partition_logic")


class PartitionLetters(PartitionState):
    """The records of one inbox partition that are refused or moved (``PartitionLogic`` decides when).

    Attributes:
        inbox_topic: the inbox's name (in dead letters and failed starts).
        inbox_partitions: the inbox's partition count (None: records are not checked for their partition).
    """

    inbox_topic: str
    inbox_partitions: int | None

    def _failed(
        self, start: StartWorkflow | StartFields, exc: BaseException, reason: str, offset: int, now_ms: int
    ) -> list[Output]:
        """The failed completion of a run whose start (at ``offset``) is dead-lettered: its waiters hear why."""
        fields = StartFields.of(start) if isinstance(start, StartWorkflow) else start
        error_type = runtime.error_info(exc, with_traceback=False).type
        address = f"{self.inbox_topic}[{self.partition}]@{offset}"
        return start_failed(self.records, fields, error_type, reason, address, now_ms)

    def _fresh(self, key: bytes | None, start: StartFields) -> bool:
        """Whether a start keyed ``key`` names a run this partition does not know (its key is its run id)."""
        run_id = start.run_id
        return key == run_id.encode() and run_id not in self.histories and run_id not in self.finished

    def _home(self, key: bytes | None) -> int | None:
        """The partition ``key`` belongs to when it is not this one (None: this one, or no check, or no key)."""
        if key is None or not self.inbox_partitions:
            return None
        home = partition_for(key, self.inbox_partitions)
        return None if home == self.partition else home

    def _misrouted(
        self, key: bytes, value: bytes, offset: int, home: int, rerouted: bool, trace: Carrier = ()
    ) -> Output:
        """A record produced to the wrong partition (a producer whose partitioner is not murmur2, or an explicit
        partition): moved, unchanged (its trace context too), to the partition its key belongs to, in this batch's
        transaction (so once);
        its run's other records from that producer follow the same way, in order. Moved once already: a dead
        letter, so processes that disagree on the partition count cannot bounce it for ever."""
        where = f"wrong partition: key {key.decode('utf-8', 'replace')!r} belongs to partition {home} (murmur2)"
        if rerouted:
            reason = f"{where}, not {self.partition}, and was re-routed here already (do all processes see "
            reason += f"{self.inbox_partitions} partitions of {self.inbox_topic}?)"
            return self._dead(key, value, offset, reason, None)
        log.warning("%s[%d]@%d: %s; re-routed there", self.inbox_topic, self.partition, offset, where)
        origin = f"{self.partition}@{offset}".encode()
        return Output("inbox", key, value, partition=home, headers=((REROUTED_FROM, origin), *trace))

    def _dead(self, key: bytes | None, value: bytes, offset: int, reason: str, exc: BaseException | None) -> Output:
        log.warning("dead letter from %s[%d]@%d: %s", self.inbox_topic, self.partition, offset, reason)
        error_type = "" if exc is None else f"{type(exc).__module__}.{type(exc).__qualname__}"
        return dead_letter(
            self.records.codec,
            topic=self.inbox_topic,
            partition=self.partition,
            offset=offset,
            key=key,
            value=value,
            reason=reason,
            error_type=error_type or "kflow.InvalidRecord",
        )
