"""The timer processor is not ready while an assigned partition's index is not open (being rebuilt): /readyz says so."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from aiokafka import TopicPartition

from streams import Settings
from streams.processors import TimerProcessor


async def test_ready_once_every_assigned_timer_partition_is_adopted(tmp_path: Path) -> None:
    processor = TimerProcessor(Settings(), state_dir=tmp_path)
    assert await processor.readiness() == "not started"
    assigned = {TopicPartition("kflow.timers", 0), TopicPartition("kflow.timers", 1)}
    processor._consumer = SimpleNamespace(assignment=lambda: assigned)  # type: ignore[assignment]
    assert await processor.readiness() == "timer partitions [0, 1] not adopted yet (index being rebuilt)"
    processor._partitions[0] = object()  # type: ignore[assignment]
    assert await processor.readiness() == "timer partitions [1] not adopted yet (index being rebuilt)"
    processor._partitions[1] = object()  # type: ignore[assignment]
    assert await processor.readiness() is None
