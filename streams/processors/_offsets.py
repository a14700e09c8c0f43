"""Which step-task offsets a worker may commit: those whose results are acknowledged, in partition order."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition


@dataclass(slots=True)
class _PartitionProgress:
    """Offsets of one partition dispatched in order; which of them have an acknowledged result."""

    order: deque[int] = field(default_factory=deque)
    pending: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    committable: int | None = None


class OffsetTracker:
    """Which task offsets may be committed: the contiguous prefix of finished tasks, per partition.

    Invariant: an offset is committed only when every task at or before it has an acknowledged result;
    a task still running (or lost with its process) keeps its partition's commit behind it.
    """

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _PartitionProgress] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        """Record that the task at ``offset`` was dispatched (offsets arrive in increasing order)."""
        progress = self._partitions.setdefault(tp, _PartitionProgress())
        progress.order.append(offset)
        progress.pending.add(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Record that the task at ``offset`` has an acknowledged result (unknown offsets are ignored)."""
        progress = self._partitions.get(tp)
        if progress is None or offset not in progress.pending:
            return  # the partition was revoked meanwhile: its new owner re-runs the task
        progress.pending.discard(offset)
        progress.finished.add(offset)
        while progress.order and progress.order[0] in progress.finished:
            head = progress.order.popleft()
            progress.finished.discard(head)
            progress.committable = head + 1

    def take_committable(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Offsets to commit for ``partitions`` that advanced since the last call."""
        offsets: dict[TopicPartition, int] = {}
        for tp in partitions:
            progress = self._partitions.get(tp)
            if progress is not None and progress.committable is not None:
                offsets[tp] = progress.committable
                progress.committable = None
        return offsets

    def restore(self, offsets: dict[TopicPartition, int]) -> None:
        """Put back offsets whose commit failed, so the next commit retries them (unless overtaken)."""
        for tp, offset in offsets.items():
            progress = self._partitions.get(tp)
            if progress is not None and progress.committable is None:
                progress.committable = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the state of revoked partitions."""
        for tp in partitions:
            self._partitions.pop(tp, None)
