"""Event limits: a soft warning once per run, a hard limit that fails the run cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from engine import EventLimitExceededError, EventLimits, KflowError, Registry, step, workflow
from engine.runtime import Run, WorkflowFailed, execute_step
from engine.testing import InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def bump(n: int) -> int:
    return n + 1


@workflow
async def counter(steps: int) -> int:
    n = 0
    for _ in range(steps):
        n = await bump(n)
    return n


@workflow(event_limits=EventLimits(soft=4, hard=6), max_duration="1h")
async def own_limits(steps: int) -> int:
    n = 0
    for _ in range(steps):
        n = await bump(n)
    return n


@workflow(max_duration="1h")
async def fan_out(width: int) -> list[int]:
    return list(await asyncio.gather(*(bump(i) for i in range(width))))


def driver_with(make_driver: Make, limits: EventLimits | None, *items: object) -> InMemoryDriver:
    driver = make_driver(*items)
    driver.event_limits = limits
    return driver


def limit_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "engine" and "soft limit" in r.getMessage()]


async def test_a_run_under_the_limits_is_unaffected(make_driver: Make, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine")
    plain = make_driver(counter, bump)
    limited = driver_with(make_driver, EventLimits(soft=12, hard=12), counter, bump)
    runs = [(d, d.start(counter, 5)) for d in (plain, limited)]
    for driver, _ in runs:
        await driver.run_until_idle()
    (d1, r1), (d2, r2) = runs
    assert d1.result(r1) == d2.result(r2) == 5
    assert d1.history(r1) == d2.history(r2)
    assert len(d2.history(r2)) == 12  # 1 + 5 * 2 + WorkflowCompleted: exactly at both limits
    assert limit_warnings(caplog) == []


async def test_soft_limit_warns_once_per_run(make_driver: Make, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine")
    driver = driver_with(make_driver, EventLimits(soft=5, hard=1_000), counter, bump)
    run_id = driver.start(counter, 10)
    await driver.run_until_idle()
    assert driver.result(run_id) == 10  # a warning only
    records = limit_warnings(caplog)
    assert len(records) == 1  # also with always_replay: replay never warns again
    message = records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    for part in (run_id, "'counter'", "6 events", "soft limit of 5", "continue_as_new"):
        assert part in message
    # Replaying the whole history (cache miss) logs nothing either.
    caplog.clear()
    Run.replay(driver.registry, driver.history(run_id)).close()
    assert limit_warnings(caplog) == []


async def test_hard_limit_fails_the_run_with_a_clear_error(make_driver: Make, event_names: Callable) -> None:
    driver = driver_with(make_driver, EventLimits(soft=4, hard=6), counter, bump)
    run_id = driver.start(counter, 10)
    await driver.run_until_idle()
    assert driver.status(run_id) == "failed"
    history = driver.history(run_id)
    # Transitions of 2 events: the one that would reach 8 is dropped, the failure is event 7.
    assert event_names(history) == ["WorkflowStarted"] + ["StepScheduled", "StepCompleted"] * 2 + [
        "StepScheduled",
        "WorkflowFailed",
    ]
    assert len(history) == 6 + 1
    failure = history[-1]
    assert isinstance(failure, WorkflowFailed)
    assert failure.error.type == "engine.EventLimitExceededError" and failure.error.retryable is False
    with pytest.raises(EventLimitExceededError) as info:
        driver.result(run_id)
    message = str(info.value)
    for part in (run_id, "'counter'", "8 events", "limit of 6", "continue_as_new"):
        assert part in message
    assert isinstance(info.value, KflowError) and EventLimitExceededError.retryable is False
    assert driver.timers() == ()


async def test_a_limit_failed_history_replays_identically(make_driver: Make) -> None:
    driver = driver_with(make_driver, EventLimits(soft=4, hard=6), counter, bump)
    run_id = driver.start(counter, 10)
    await driver.run_until_idle()
    history = driver.history(run_id)
    run = Run.replay(driver.registry, history)  # re-runs the code: no divergence
    assert run.finished and run.status == "failed" and run.history_length == len(history)
    run.close()
    recovered, transition = Run.recover(driver.registry, history, 0, EventLimits(soft=1, hard=2))
    assert recovered.status == "failed" and transition.events == () and transition.commands == ()
    recovered.close()


async def test_workflow_limits_beat_the_host_default(make_driver: Make, event_names: Callable) -> None:
    driver = driver_with(make_driver, EventLimits(soft=2, hard=4), counter, own_limits, bump)
    own = driver.start(own_limits, 10)
    host = driver.start(counter, 10)
    await driver.run_until_idle()
    # own_limits: WorkflowStarted, deadline TimerScheduled, 2 transitions of 2; the next one
    # (to 7) is dropped. counter fails at the host's hard=4 instead.
    assert len(driver.history(own)) == 6 and len(driver.history(host)) == 5
    with pytest.raises(EventLimitExceededError, match="limit of 6"):
        driver.result(own)
    with pytest.raises(EventLimitExceededError, match="limit of 4"):
        driver.result(host)
    assert driver.timers() == ()  # own_limits' deadline timer was cancelled


async def test_a_transition_that_would_end_the_run_past_the_limit_fails_it(
    make_driver: Make, event_names: Callable
) -> None:
    driver = driver_with(make_driver, EventLimits(soft=3, hard=3), counter, bump)
    run_id = driver.start(counter, 1)
    await driver.run_until_idle()
    # StepCompleted + WorkflowCompleted would make 4 events: the whole transition is dropped.
    assert event_names(driver.history(run_id)) == ["WorkflowStarted", "StepScheduled", "WorkflowFailed"]
    assert driver.status(run_id) == "failed"


async def test_the_first_activation_alone_over_the_limit(make_driver: Make, event_names: Callable) -> None:
    driver = driver_with(make_driver, EventLimits(soft=3, hard=3), fan_out, bump)
    run_id = driver.start(fan_out, 5)
    await driver.run_until_idle()
    history = driver.history(run_id)
    assert event_names(history) == ["WorkflowStarted", "TimerScheduled", "WorkflowFailed"]
    with pytest.raises(EventLimitExceededError):
        driver.result(run_id)
    assert driver.timers() == ()
    run = Run.replay(driver.registry, history)  # the dropped commands are not re-issued
    assert run.status == "failed"
    run.close()


async def test_a_history_already_past_a_lowered_limit_fails_on_its_next_input(make_driver: Make) -> None:
    driver = make_driver(counter, bump)
    run_id = driver.start(counter, 10)
    for _ in range(4):
        cmd = driver._tasks.popleft()
        driver.deliver(await execute_step(driver.registry, cmd, driver.clock))
    history = driver.history(run_id)
    assert len(history) == 10
    run = Run.replay(driver.registry, history, EventLimits(soft=2, hard=4))  # replay never enforces
    assert run.status == "running"
    step_cmd = driver._tasks.popleft()
    transition = run.handle(await execute_step(driver.registry, step_cmd, driver.clock), 0)
    assert [type(e).__name__ for e in transition.events] == ["WorkflowFailed"]
    assert transition.events[0].seq == 11 and run.status == "failed"
    run.close()


def test_event_limits_are_validated() -> None:
    assert EventLimits() == EventLimits(soft=10_000, hard=50_000)
    for bad in ({"soft": 0}, {"hard": -1}, {"soft": 5, "hard": 4}, {"soft": True}, {"hard": 2.5}):
        with pytest.raises(ValueError):
            EventLimits(**bad)
    with pytest.raises(TypeError):
        workflow(event_limits=50)  # type: ignore[call-overload]
    assert Registry([own_limits]).workflow("own_limits").event_limits == EventLimits(soft=4, hard=6)
