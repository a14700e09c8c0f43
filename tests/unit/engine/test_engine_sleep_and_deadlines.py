"""Durable sleep with a fake clock, max_duration, and step timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from engine import StepTimeoutError, WorkflowTimeoutError, sleep, step, workflow
from engine.runtime import TimerScheduled
from engine.testing import FakeClock, InMemoryDriver

START_MS = 1_700_000_000_000  # the clock fixture starts here

Make = Callable[..., InMemoryDriver]


@pytest.mark.parametrize(
    ("duration", "ms"),
    [
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        (45, 45_000),
        (0.5, 500),
        (timedelta(minutes=2), 120_000),
        (datetime.fromtimestamp((START_MS + 90_000) / 1000, tz=UTC), 90_000),
        (datetime.fromtimestamp((START_MS + 60_000) / 1000, tz=UTC).replace(tzinfo=None), 60_000),
    ],
)
async def test_sleep_formats_wake_exactly_on_time(
    make_driver: Make, clock: FakeClock, duration: object, ms: int
) -> None:
    @workflow
    async def napper() -> int:
        await sleep(duration)  # type: ignore[arg-type]
        return 1

    driver = make_driver(napper)
    run_id = driver.start(napper)
    await driver.run_until_idle()
    (timer,) = driver.timers()
    assert (timer.kind, timer.timer_id, timer.fire_at) == ("sleep", "sleep:0:1", START_MS + ms)
    if ms > 1:
        clock.advance(timedelta(milliseconds=ms - 1))
        await driver.run_until_idle()
        assert driver.status(run_id) == "running"
    clock.set(START_MS + ms)
    await driver.run_until_idle()
    assert driver.result(run_id) == 1


async def test_sleep_until_the_past_fires_at_once(make_driver: Make) -> None:
    @workflow
    async def late() -> str:
        await sleep(datetime(2001, 1, 1, tzinfo=UTC))
        return "woke"

    driver = make_driver(late)
    run_id = driver.start(late)
    await driver.run_until_idle()
    assert driver.result(run_id) == "woke"


async def test_max_duration_fails_the_run(make_driver: Make, clock: FakeClock, event_names: Callable) -> None:
    @workflow(max_duration="1h")
    async def slow() -> None:
        await sleep("2h")

    driver = make_driver(slow)
    run_id = driver.start(slow)
    started = driver.history(run_id)[0]
    assert started.deadline_at == START_MS + 3_600_000  # type: ignore[union-attr]
    deadline = [e for e in driver.history(run_id) if isinstance(e, TimerScheduled) and e.position == -1]
    assert deadline[0].kind == "workflow_timeout"
    clock.advance("1h")
    await driver.run_until_idle()
    assert driver.status(run_id) == "failed"
    with pytest.raises(WorkflowTimeoutError, match="max_duration"):
        driver.result(run_id)
    assert event_names(driver.history(run_id))[-2:] == ["TimerElapsed", "WorkflowFailed"]
    assert driver.timers() == ()  # the sleep timer was cancelled when the run ended


async def test_finishing_in_time_cancels_the_deadline_timer(make_driver: Make) -> None:
    @workflow(max_duration="1d")
    async def quick() -> str:
        return "done"

    driver = make_driver(quick)
    run_id = driver.start(quick)
    assert driver.result(run_id) == "done"
    assert driver.timers() == ()


async def test_step_timeout_is_enforced_and_retryable(make_driver: Make, clock: FakeClock) -> None:
    attempts: list[int] = []

    @step(timeout="20ms", max_retries=1, retry_delay="fixed")
    async def hangs() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(5)
        return "fast now"

    @workflow
    async def wf() -> str:
        return await hangs()

    driver = make_driver(wf, hangs)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    failure = next(e for e in driver.history(run_id) if type(e).__name__ == "StepFailed")
    assert failure.error.type == "engine.StepTimeoutError" and failure.retry_at is not None  # type: ignore[union-attr]
    clock.advance("1s")
    await driver.run_until_idle()
    assert driver.result(run_id) == "fast now"


async def test_step_timeout_exhausted_reaches_the_workflow(make_driver: Make) -> None:
    @step(timeout="10ms", max_retries=0)
    async def hangs() -> None:
        await asyncio.sleep(5)

    @workflow
    async def wf() -> None:
        await hangs()

    driver = make_driver(wf, hangs)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    with pytest.raises(StepTimeoutError, match="10 ms"):
        driver.result(run_id)
