"""The dashboard's per-minute windows (``streams.ui.Windows``) and what the collector makes of the records it follows
— no server."""

from __future__ import annotations

import pytest

import streams.ops._activity as activity
from streams import Settings
from streams.ops import TopicFollower, TopicRecord
from streams.ui import LATENCY_BOUNDS_MS, StatsCollector, Windows, quantile

T0 = 1_700_000_040_000  # a minute boundary
MIN = 60_000


def test_runs_finished_land_in_the_minute_they_finished() -> None:
    windows = Windows(minutes=3)
    windows.run_finished("order", "completed", T0 + 5)
    windows.run_finished("order", "failed", T0 + MIN + 1)
    windows.run_finished("order", "completed", T0 + MIN + 2)
    windows.run_finished("refund", "completed", T0 + 2 * MIN)
    now = T0 + 2 * MIN + 30_000
    assert windows.minute_starts(now) == [T0, T0 + MIN, T0 + 2 * MIN]
    assert windows.finished(now) == {
        "order": {"completed": [1, 1, 0], "failed": [0, 1, 0]},
        "refund": {"completed": [0, 0, 1]},
    }


def test_minutes_past_the_window_are_dropped_and_late_facts_ignored() -> None:
    windows = Windows(minutes=2)
    windows.run_finished("order", "completed", T0)
    windows.run_finished("order", "completed", T0 + 3 * MIN)  # moves the window: T0's minute is gone
    windows.run_finished("order", "completed", T0 + 10)  # older than the window now: ignored
    assert windows.finished(T0 + 3 * MIN) == {"order": {"completed": [0, 1]}}
    assert windows.finished(T0 + 10 * MIN) == {}  # nothing in a window that has moved on


def test_latency_percentiles_interpolate_within_the_histogram_buckets() -> None:
    windows = Windows(minutes=5)
    for latency in [3] * 50 + [40] * 40 + [900] * 10:
        windows.step_latency("charge", latency, T0)
    p = windows.latencies(T0)["charge"]
    assert p.count == 100
    assert p.p50 == pytest.approx(5.0)  # the 50th of 100 is the last of the first bucket (0, 5]
    assert 25 <= p.p90 <= 50
    assert 500 < p.p99 <= 1000
    assert quantile([0] * (len(LATENCY_BOUNDS_MS) + 1), 0.5) == 0.0
    beyond = [0] * len(LATENCY_BOUNDS_MS) + [3]
    assert quantile(beyond, 0.99) == LATENCY_BOUNDS_MS[-1]


def test_dead_letters_and_the_highest_lag_of_each_minute() -> None:
    windows = Windows(minutes=2)
    windows.dead_letter(T0 + MIN)
    windows.dead_letter(T0 + MIN + 1)
    windows.lag("kflow.workers", 7, T0 + MIN)
    windows.lag("kflow.workers", 3, T0 + MIN + 5)
    now = T0 + MIN
    assert windows.dead_letters(now) == [0, 2]
    assert windows.lags(now) == {"kflow.workers": [None, 7]}


def test_names_past_the_bound_count_as_other() -> None:
    windows = Windows(minutes=1)
    for index in range(205):
        windows.run_finished(f"w{index}", "completed", T0)
    finished = windows.finished(T0)
    assert len(finished) == 201 and finished["other"] == {"completed": [5]}


def record(name: str, **fields: object) -> TopicRecord:
    return TopicRecord("history", name, dict(fields), T0)


def test_the_collector_joins_a_step_attempt_to_its_result_and_skips_redrive_notes() -> None:
    collector = StatsCollector(Settings(), minutes=5)
    collector.apply(record("StepScheduled", run_id="r", position=0, attempt=1, step_name="charge", timestamp=T0))
    collector.apply(record("StepFailed", run_id="r", position=0, attempt=1, timestamp=T0 + 40))
    collector.apply(record("StepCompleted", run_id="r", position=1, attempt=1, timestamp=T0 + 50))  # unknown: skipped
    collector.apply(record("RunFinished", workflow_name="order", status="failed", finished_at=T0 + 60))
    collector.apply(record("DeadLetter", error_type="engine.UnknownWorkflowError", failed_at=T0))
    collector.apply(record("DeadLetter", error_type="kflow.Redriven", failed_at=T0))
    assert collector.windows.latencies(T0)["charge"].count == 1
    assert collector.windows.finished(T0) == {"order": {"failed": [0, 0, 0, 0, 1]}}
    assert sum(collector.windows.dead_letters(T0)) == 1


def test_a_fact_from_the_future_is_skipped_and_the_window_goes_on() -> None:
    now = [T0]
    windows = Windows(minutes=5, now_ms=lambda: now[0])
    windows.dead_letter(T0 + 365 * 86_400_000)  # a host a year ahead
    windows.dead_letter(T0 + 59_000)  # within a minute ahead: counted
    windows.dead_letter(T0)
    assert windows.skipped == 1
    assert windows.dead_letters(T0)[-1] == 2  # the window was not moved a year on


def test_after_a_fault_each_partition_resumes_after_its_own_last_record() -> None:
    collector = StatsCollector(Settings(), minutes=5)
    collector.apply(TopicRecord("dlq", "DeadLetter", {"error_type": "x", "failed_at": T0}, T0 + 10**12, 0, 41))
    collector.apply(TopicRecord("history", "StepScheduled", step(), T0, 3, 7))
    collector.apply(TopicRecord("history", "StepScheduled", step(), T0 - 5000, 2, 9))
    follower = TopicFollower(Settings(), {"history": "kflow.history"}, (), 0, collector._resume)
    assert collector._resume == {("dlq", 0): 42, ("history", 3): 8, ("history", 2): 10}
    assert follower._resume == collector._resume


def step() -> dict[str, object]:
    return {"run_id": "r", "position": 0, "attempt": 1, "step_name": "s", "timestamp": T0}


async def test_a_follower_closes_its_consumer_when_it_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[object] = []

    class Refusing:
        async def start(self) -> None:
            raise ConnectionError("no broker")

    async def partitions(target: object, topic: str) -> int:
        return 1

    async def close(reader: object) -> None:
        closed.append(reader)

    reader = Refusing()
    monkeypatch.setattr(activity, "topic_partitions", partitions)
    monkeypatch.setattr(activity, "consumer", lambda *args, **kwargs: reader)
    monkeypatch.setattr(activity, "close_consumer", close)
    with pytest.raises(Exception, match="no broker"):
        await TopicFollower(Settings(), {"history": "kflow.history"}, (), 0).start()
    assert closed == [reader]
