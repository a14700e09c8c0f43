"""Runs asleep for a minute or more are parked: not kept live in the run cache, replayed when their timer fires."""

from __future__ import annotations

from partition_samples import RECORDS

from engine import Registry, sleep, workflow
from engine.runtime import CallArgs, StartTimer, StartWorkflow, TimerFired
from schemas import Codec
from streams.processors import PartitionLogic


@workflow
async def nap(seconds: float) -> str:
    await sleep(seconds)
    return f"slept {seconds}"


REGISTRY = Registry([nap])


def _start(run_id: str, seconds: float) -> bytes:
    return RECORDS.encode(
        StartWorkflow(run_id=run_id, workflow_name="nap", args=CallArgs((seconds,), {}), requested_at=1)
    )


def _timer(outputs: list) -> StartTimer:  # type: ignore[type-arg]
    (timer,) = [RECORDS.decode(o.value) for o in outputs if o.topic == "timers"]
    assert isinstance(timer, StartTimer)
    return timer


def test_a_long_sleeper_is_parked_and_replayed_when_it_wakes_a_short_one_stays_live() -> None:
    part = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)
    long_timer = _timer(part.process(b"long", _start("long", 3600), 0, 1_000))
    short_timer = _timer(part.process(b"short", _start("short", 5), 1, 1_000))
    assert list(part.cache.runs) == ["short"] and part.cache.parked == 1
    assert "long" in part.histories  # parked, not forgotten: its history stays

    fired = TimerFired(
        run_id="long",
        timer_id=long_timer.timer_id,
        position=long_timer.position,
        kind="sleep",
        fire_at=long_timer.fire_at,
        fired_at=long_timer.fire_at + 3,
    )
    replays = part.replays
    outputs = part.process(b"long", RECORDS.encode(fired), 2, long_timer.fire_at + 3)
    assert part.replays == replays + 1 and part.finished["long"] == "completed"
    (done,) = [o for o in outputs if o.topic == "completions"]
    assert Codec().decode(done.value).record["status"] == "completed"
    assert short_timer.fire_at - 1_000 == 5_000  # under a minute: kept live, no replay when it fires
