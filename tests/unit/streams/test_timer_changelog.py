"""The timer changelog without Kafka: keys, the fold that rebuilds an index, when an index is rebuilt."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from engine.runtime import CancelTimer, StartTimer
from schemas import RecordCodec
from streams import TOPIC_SPECS, Topics
from streams.processors import (
    ArmedTimer,
    ChangelogFold,
    RestoredTimers,
    TimerChangelog,
    TimerIndex,
    TimerKey,
    changelog_key,
)

RECORDS = RecordCodec()


def _start(run_id: str, timer_id: str, fire_at: int) -> StartTimer:
    return StartTimer(run_id=run_id, timer_id=timer_id, position=3, kind="sleep", fire_at=fire_at, requested_at=1)


def _arm(run_id: str, timer_id: str, fire_at: int) -> tuple[bytes, bytes]:
    return changelog_key((run_id, timer_id)), RECORDS.encode(_start(run_id, timer_id, fire_at))


class MemoryChangelog(TimerChangelog):
    """The changelog as an in-memory log per partition (uncompacted: every record stays, as before a clean)."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:1", Topics("unit"), RECORDS)
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        self.reads = 0

    async def write(
        self, partition: int, arms: Sequence[tuple[TimerKey, bytes, object]], removals: Sequence[TimerKey]
    ) -> int | None:
        records = [(changelog_key(key), value) for key, value, _ in arms]
        records += [(changelog_key(key), None) for key in removals]
        self.log[partition].extend(records)
        return len(self.log[partition]) if records else None

    async def read(self, partition: int, end_offset: int) -> RestoredTimers:
        self.reads += 1
        fold = ChangelogFold(RECORDS)
        for key, value in self.log[partition][:end_offset]:
            fold.apply(key, value)
        return fold.result(end_offset)

    def end(self, partition: int) -> int:
        return len(self.log[partition])


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TimerIndex]:
    opened = TimerIndex(tmp_path / "host-a" / "timers-0.sqlite3")
    yield opened
    opened.close()


def test_the_changelog_topic_is_declared_compacted_without_time_retention() -> None:
    (spec,) = [s for s in TOPIC_SPECS if s.suffix == "timer-index"]
    assert spec.config == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert MemoryChangelog().topic == "unit.timer-index"


def test_key_is_run_id_nul_timer_id() -> None:
    assert changelog_key(("run-1", "sleep:2:0")) == b"run-1\x00sleep:2:0"
    assert changelog_key(("schedule:a:b", "c")) != changelog_key(("schedule:a", "b:c"))


def test_fold_keeps_the_latest_record_per_timer_and_tombstones_remove() -> None:
    fold = ChangelogFold(RECORDS)
    for key, value in [
        _arm("r", "a", 500),
        _arm("r", "b", 100),
        _arm("r", "a", 300),
        (changelog_key(("r", "b")), None),
        _arm("s", "c", 200),
        (changelog_key(("s", "x")), None),
    ]:
        fold.apply(key, value)
    restored = fold.result(end_offset=6)
    assert restored.timers == [ArmedTimer(200, "s", "c", 3, "sleep"), ArmedTimer(300, "r", "a", 3, "sleep")]
    assert (restored.end_offset, restored.records, restored.skipped) == (6, 6, 0)


def test_fold_rearms_a_timer_armed_again_after_its_tombstone() -> None:
    fold = ChangelogFold(RECORDS)
    for key, value in [_arm("r", "a", 100), (changelog_key(("r", "a")), None), _arm("r", "a", 900)]:
        fold.apply(key, value)
    assert [t.fire_at for t in fold.result(3).timers] == [900]


def test_fold_skips_records_it_cannot_use() -> None:
    fold = ChangelogFold(RECORDS)
    cancel = RECORDS.encode(CancelTimer(run_id="r", timer_id="b", requested_at=1))
    for key, value in [
        (changelog_key(("r", "a")), b"\x00garbage"),
        (changelog_key(("r", "b")), cancel),
        (changelog_key(("r", "other")), RECORDS.encode(_start("r", "c", 5))),
        (None, b"x"),
        _arm("r", "ok", 7),
    ]:
        fold.apply(key, value)
    restored = fold.result(5)
    assert [t.timer_id for t in restored.timers] == ["ok"]
    assert (restored.records, restored.skipped) == (5, 3)


async def test_an_index_that_reflects_the_changelog_end_is_kept(index: TimerIndex) -> None:
    changelog = MemoryChangelog()
    end = await changelog.write(0, [_key_value("r", "a", 100)], [])
    index.apply([ArmedTimer(100, "r", "a", 3, "sleep")], changelog_end=end)
    assert await changelog.restore(0, index, changelog.end(0), now_ms=0) is None
    assert changelog.reads == 0 and index.count() == 1


async def test_a_new_index_is_rebuilt_from_the_changelog(tmp_path: Path) -> None:
    changelog = MemoryChangelog()
    await changelog.write(1, [_key_value("r", "a", 300), _key_value("r", "b", 100), _key_value("r", "c", 200)], [])
    await changelog.write(1, [], [("r", "c")])
    index = TimerIndex(tmp_path / "host-b" / "timers-1.sqlite3")
    restored = await changelog.restore(1, index, changelog.end(1), now_ms=0)
    assert restored is not None and len(restored.timers) == 2 and restored.records == 4
    assert [t.timer_id for t in index.earliest(10)] == ["b", "a"] and index.changelog_end == 4
    assert await changelog.restore(1, index, changelog.end(1), now_ms=0) is None  # now current
    index.close()


async def test_a_stale_index_is_rebuilt_and_resurrects_nothing(tmp_path: Path) -> None:
    changelog = MemoryChangelog()
    host_a = TimerIndex(tmp_path / "a" / "timers-0.sqlite3")
    arms = [
        ArmedTimer(100, "r", "fires", 0, "sleep"),
        ArmedTimer(200, "r", "cancelled", 0, "sleep"),
        ArmedTimer(300, "r", "stays", 0, "sleep"),
    ]
    end = await changelog.write(0, [(t.key, _value(t), ()) for t in arms], [])
    host_a.apply(arms, changelog_end=end)
    # The partition moved to another host, which fired one timer, cancelled one and armed one ...
    await changelog.write(0, [_key_value("r", "new", 400)], [("r", "fires"), ("r", "cancelled")])
    # ... and came back: host A's file is stale and must not fire what the other host retired.
    restored = await changelog.restore(0, host_a, changelog.end(0), now_ms=0)
    assert restored is not None
    assert [t.timer_id for t in host_a.earliest(10)] == ["stays", "new"] and host_a.changelog_end == 6
    host_a.close()


async def test_an_index_from_before_the_changelog_is_copied_into_it(index: TimerIndex) -> None:
    changelog = MemoryChangelog()
    legacy = [ArmedTimer(100, "r", "a", 1, "retry"), ArmedTimer(200, "s", "b", 2, "hook")]
    index.apply(legacy)  # no changelog offset stored: written before the changelog existed
    await changelog.write(0, [_key_value("t", "elsewhere", 50)], [])
    restored = await changelog.restore(0, index, changelog.end(0), now_ms=42)
    assert restored is not None
    assert index.earliest(10) == [ArmedTimer(50, "t", "elsewhere", 3, "sleep"), *legacy]
    copied = RECORDS.decode(changelog.log[0][1][1] or b"")
    assert copied == StartTimer(run_id="r", timer_id="a", position=1, kind="retry", fire_at=100, requested_at=42)


def _value(timer: ArmedTimer) -> bytes:
    return RECORDS.encode(
        StartTimer(
            run_id=timer.run_id,
            timer_id=timer.timer_id,
            position=timer.position,
            kind=timer.kind,
            fire_at=timer.fire_at,
            requested_at=1,
        )
    )


def _key_value(run_id: str, timer_id: str, fire_at: int) -> tuple[TimerKey, bytes, tuple[()]]:
    return (run_id, timer_id), RECORDS.encode(_start(run_id, timer_id, fire_at)), ()
