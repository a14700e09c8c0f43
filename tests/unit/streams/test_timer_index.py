"""The timer processor's timer index (SQLite) and its bounded in-memory head, without Kafka."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runtime import StartTimer
from streams.processors import ArmedTimer, TimerHead, TimerIndex


def _timer(fire_at: int, run_id: str = "run-a", timer_id: str | None = None, position: int = 0) -> ArmedTimer:
    return ArmedTimer(fire_at, run_id, timer_id or f"sleep:{fire_at}:0", position, "sleep")


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TimerIndex]:
    opened = TimerIndex(tmp_path / "prefix" / "timers-0.sqlite3")
    yield opened
    opened.close()


def _drain(head: TimerHead, index: TimerIndex, now_ms: int = 10**15) -> list[ArmedTimer]:
    """Fire everything the way the scheduler does: take due, delete, refill an exhausted head."""
    fired: list[ArmedTimer] = []
    while True:
        due = head.take_due(now_ms, limit=3)
        if due:
            index.remove_fired(due)
            fired.extend(due)
        elif head.needs_refill:
            head.load(index.earliest(head.capacity))
        else:
            return fired


def test_armed_timer_is_built_from_a_start_timer_record() -> None:
    record = StartTimer(run_id="r", timer_id="retry:3:1", position=3, kind="retry", fire_at=42, requested_at=1)
    assert ArmedTimer.of(record) == ArmedTimer(42, "r", "retry:3:1", 3, "retry")
    assert ArmedTimer.of(record).key == ("r", "retry:3:1")


def test_index_file_is_created_in_wal_mode(index: TimerIndex) -> None:
    assert index.path.exists()
    assert index._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_arming_is_an_idempotent_upsert(index: TimerIndex) -> None:
    timer = _timer(100)
    index.apply([timer])
    index.apply([timer])
    assert index.count() == 1
    moved = ArmedTimer(200, timer.run_id, timer.timer_id, 7, "retry")
    index.apply([moved])
    assert index.earliest(10) == [moved]


def test_cancel_deletes_and_ignores_unknown_keys(index: TimerIndex) -> None:
    keep, drop = _timer(100, timer_id="a"), _timer(200, timer_id="b")
    index.apply([keep, drop])
    index.apply([], [drop.key, ("no-such-run", "x")])
    assert index.earliest(10) == [keep]


def test_earliest_orders_by_due_time_then_identity(index: TimerIndex) -> None:
    timers = [
        _timer(fire_at, run_id=f"run-{n % 3}", timer_id=f"t{n}")
        for n, fire_at in enumerate([500, 100, 300, 100, 200, 500])
    ]
    index.apply(random.Random(7).sample(timers, len(timers)))
    assert index.earliest(100) == sorted(timers)
    assert index.earliest(2) == sorted(timers)[:2]


def test_remove_fired_keeps_a_timer_rearmed_with_another_due_time(index: TimerIndex) -> None:
    fired = _timer(100, timer_id="t")
    index.apply([fired])
    rearmed = ArmedTimer(900, fired.run_id, fired.timer_id, fired.position, fired.kind)
    index.apply([rearmed])
    index.remove_fired([fired])
    assert index.earliest(10) == [rearmed]
    index.remove_fired([rearmed])
    assert index.count() == 0


def test_reopened_index_keeps_its_timers(tmp_path: Path) -> None:
    path = tmp_path / "timers-1.sqlite3"
    first = TimerIndex(path)
    first.apply([_timer(300, timer_id="a"), _timer(100, timer_id="b"), _timer(200, timer_id="c")])
    first.apply([], [("run-a", "c")])
    first.close()
    again = TimerIndex(path)
    assert [t.fire_at for t in again.earliest(10)] == [100, 300]
    again.close()


def test_failed_transaction_rolls_back(index: TimerIndex) -> None:
    index.apply([_timer(100, timer_id="a")])
    with pytest.raises(AttributeError):
        index.apply([_timer(200, timer_id="b"), None])  # type: ignore[list-item]
    assert [t.timer_id for t in index.earliest(10)] == ["a"]


def test_head_takes_due_timers_in_order_up_to_the_limit() -> None:
    head = TimerHead(10)
    head.load([_timer(300, timer_id="c"), _timer(100, timer_id="a"), _timer(200, timer_id="b")])
    assert head.next_fire_at == 100
    assert head.take_due(99, limit=10) == []
    assert [t.fire_at for t in head.take_due(250, limit=1)] == [100]
    assert [t.fire_at for t in head.take_due(250, limit=10)] == [200]
    assert len(head) == 1 and head.next_fire_at == 300


def test_head_offer_reports_a_new_soonest_timer_and_replaces_a_rearmed_one() -> None:
    head = TimerHead(10)
    head.load([_timer(500, timer_id="x")])
    assert head.offer(_timer(100, timer_id="y")) is True
    assert head.offer(_timer(300, timer_id="z")) is False
    assert head.offer(_timer(50, timer_id="x")) is True  # re-armed earlier: one entry, moved
    assert [t.timer_id for t in head.take_due(10**9, limit=10)] == ["x", "y", "z"]
    assert head.next_fire_at is None and not head.needs_refill


def test_head_discard_forgets_a_cancelled_timer() -> None:
    head = TimerHead(10)
    head.load([_timer(100, timer_id="a"), _timer(200, timer_id="b")])
    head.discard(("run-a", "a"))
    head.discard(("run-a", "unknown"))
    assert head.next_fire_at == 200 and len(head) == 1


def test_head_is_bounded_and_keeps_the_soonest_timers() -> None:
    head = TimerHead(3)
    head.load([])
    for fire_at in (400, 300, 200, 100, 500):
        head.offer(_timer(fire_at))
    assert len(head) == 3
    assert [t.fire_at for t in head.take_due(10**9, limit=10)] == [100, 200, 300]
    assert head.needs_refill  # 400 and 500 were pushed out to SQLite only


def test_head_ignores_timers_beyond_its_horizon_until_refilled(index: TimerIndex) -> None:
    index.apply([_timer(fire_at) for fire_at in (100, 200, 300)])
    head = TimerHead(2)
    head.load(index.earliest(2))
    late = _timer(250)
    index.apply([late])
    assert head.offer(late) is False and len(head) == 2
    early = _timer(150)
    index.apply([early])
    head.offer(early)
    assert len(head) == 2  # 200 dropped to keep the bound
    assert [t.fire_at for t in _drain(head, index)] == [100, 150, 200, 250, 300]


def test_head_refills_across_many_more_timers_than_its_capacity(index: TimerIndex) -> None:
    rng = random.Random(11)
    timers = [_timer(rng.randrange(1_000, 2_000), run_id=f"run-{n % 7}", timer_id=f"t{n}") for n in range(50)]
    index.apply(timers[:20])
    head = TimerHead(8)
    head.load(index.earliest(8))
    for timer in timers[20:]:  # arrivals after the head was loaded, some before and some beyond its horizon
        index.apply([timer])
        head.offer(timer)
        assert len(head) <= 8
    cancelled = timers[5]
    index.apply([], [cancelled.key])
    head.discard(cancelled.key)
    fired = _drain(head, index)
    assert fired == sorted(t for t in timers if t != cancelled)
    assert index.count() == 0


def test_head_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TimerHead(0)


def test_a_new_index_reflects_no_changelog_offset(index: TimerIndex) -> None:
    assert index.changelog_end is None
    index.apply([_timer(100)])
    assert index.changelog_end is None  # a write without changelog_end leaves it alone


def test_changelog_end_is_stored_with_the_rows_it_describes(tmp_path: Path) -> None:
    path = tmp_path / "timers-0.sqlite3"
    first = TimerIndex(path)
    first.apply([_timer(100, timer_id="a"), _timer(200, timer_id="b")], changelog_end=2)
    first.remove_fired([_timer(100, timer_id="a")], changelog_end=3)
    first.close()
    again = TimerIndex(path)
    assert again.changelog_end == 3 and [t.timer_id for t in again.earliest(10)] == ["b"]
    again.close()


def test_a_failed_transaction_keeps_the_previous_changelog_end(index: TimerIndex) -> None:
    index.apply([_timer(100, timer_id="a")], changelog_end=1)
    with pytest.raises(AttributeError):
        index.apply([_timer(200, timer_id="b"), None], changelog_end=9)  # type: ignore[list-item]
    assert index.changelog_end == 1


def test_replace_makes_the_rows_exactly_the_rebuilt_timers(index: TimerIndex) -> None:
    index.apply([_timer(100, timer_id="old"), _timer(200, timer_id="kept")], changelog_end=2)
    index.replace([_timer(200, timer_id="kept"), _timer(50, timer_id="new")], changelog_end=7)
    assert [t.timer_id for t in index.earliest(10)] == ["new", "kept"] and index.changelog_end == 7


def test_present_and_holding_tell_which_timers_are_still_armed(index: TimerIndex) -> None:
    armed = _timer(100, timer_id="a")
    index.apply([armed, _timer(200, timer_id="b")])
    assert index.present([("run-a", "b"), ("run-a", "gone"), armed.key]) == [("run-a", "b"), armed.key]
    rearmed = ArmedTimer(900, armed.run_id, armed.timer_id, armed.position, armed.kind)
    assert index.holding([armed]) == [armed]
    index.apply([rearmed])
    assert index.holding([armed, _timer(300, timer_id="gone")]) == [] and index.holding([rearmed]) == [rearmed]
