"""One timer partition's changelog ordering without Kafka: what is written to the changelog, and when."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from engine.testing import FakeClock
from streams.processors import ArmedTimer, PartitionTimers, TimerIndex, TimerKey


class Recorder:
    """Both fakes at once: the changelog (writes) and the inbox (fires), recording one ordered trace."""

    def __init__(self) -> None:
        self.trace: list[tuple[str, list[str]]] = []
        self.end = 0
        self.gate: asyncio.Event | None = None  # when set up, a fire waits for it after its ack

    async def write(
        self, partition: int, arms: Sequence[tuple[TimerKey, bytes, object]], removals: Sequence[TimerKey]
    ) -> int | None:
        self.trace += [("arm", [key[1] for key, _, _ in arms])] if arms else []
        self.trace += [("tombstone", [key[1] for key in removals])] if removals else []
        self.end += len(arms) + len(removals)
        return self.end if arms or removals else None

    async def fire(self, timers: Sequence[ArmedTimer]) -> None:
        self.trace.append(("fired", [t.timer_id for t in timers]))
        if self.gate is not None:
            await self.gate.wait()


def _timer(timer_id: str, fire_at: int) -> tuple[ArmedTimer, bytes]:
    return ArmedTimer(fire_at, "run", timer_id, 0, "sleep"), b"StartTimer " + timer_id.encode()


def _partition(tmp_path: Path, clock: FakeClock, recorder: Recorder) -> PartitionTimers:
    part = PartitionTimers(0, TimerIndex(tmp_path / "timers-0.sqlite3"), 16, clock, recorder.fire, recorder)
    part.head.load([])
    return part


async def test_a_fire_is_acknowledged_before_its_tombstone_and_the_delete(tmp_path: Path) -> None:
    clock, recorder = FakeClock(1000), Recorder()
    part = _partition(tmp_path, clock, recorder)
    await part.apply([_timer("a", 1500), _timer("b", 1800)], [])
    assert part.index.changelog_end == 2
    clock.set(1600)
    await part._step()
    assert recorder.trace == [("arm", ["a", "b"]), ("fired", ["a"]), ("tombstone", ["a"])]
    assert [t.timer_id for t in part.index.earliest(10)] == ["b"] and part.index.changelog_end == 3
    part.index.close()


async def test_only_armed_timers_get_a_tombstone(tmp_path: Path) -> None:
    clock, recorder = FakeClock(1000), Recorder()
    part = _partition(tmp_path, clock, recorder)
    await part.apply([_timer("a", 1500)], [])
    await part.apply([], [("run", "a"), ("run", "never-armed")])  # cancels
    await part.apply([], [("run", "due-on-arrival")])  # fast path of an unknown timer: nothing to write
    assert recorder.trace == [("arm", ["a"]), ("tombstone", ["a"])]
    assert part.index.count() == 0 and part.index.changelog_end == 2
    part.index.close()


async def test_a_timer_rearmed_while_its_fire_is_in_flight_keeps_its_changelog_record(tmp_path: Path) -> None:
    clock, recorder = FakeClock(1000), Recorder()
    part = _partition(tmp_path, clock, recorder)
    await part.apply([_timer("a", 1500)], [])
    clock.set(1600)
    recorder.gate = asyncio.Event()
    firing = asyncio.create_task(part._step())
    await asyncio.sleep(0)  # TimerFired of a@1500 is out, not yet acknowledged
    await part.apply([_timer("a", 9000)], [])  # the run armed it again meanwhile
    recorder.gate.set()
    await firing
    # No tombstone after the re-arm: the changelog's last word on "a" is the re-arm, like the index's.
    assert recorder.trace == [("arm", ["a"]), ("fired", ["a"]), ("arm", ["a"])]
    assert part.index.earliest(10) == [ArmedTimer(9000, "run", "a", 0, "sleep")]
    part.index.close()
