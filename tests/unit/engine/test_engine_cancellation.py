"""Cancellation: CancellationError at the current await, finally cleanup, shield, late results."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import CancellationError, shield, sleep, step, workflow
from engine.runtime import StepCompleted
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


def make_steps(log: list[str]) -> tuple[Callable[..., object], ...]:
    @step
    async def work(name: str) -> str:
        log.append(name)
        return name

    @step(max_retries=3, retry_delay="1m")
    async def failing() -> None:
        log.append("failing")
        raise ValueError("nope")

    return work, failing


async def test_cancel_during_step_runs_finally_cleanup(make_driver: Make, event_names: Callable) -> None:
    log: list[str] = []
    work, _ = make_steps(log)

    @workflow
    async def order() -> str:
        try:
            await work("charge")
            await work("ship")
            return "shipped"
        finally:
            await work("cleanup")

    driver = make_driver(order, work)
    run_id = driver.start(order)
    driver.cancel(run_id, "customer asked")
    await driver.run_until_idle()
    assert log == ["charge", "cleanup"]  # the abandoned step still ran; "ship" never did
    assert driver.status(run_id) == "cancelled"
    with pytest.raises(CancellationError):
        driver.result(run_id)
    history = driver.history(run_id)
    assert event_names(history) == [
        "WorkflowStarted",
        "StepScheduled",
        "CancelRequested",
        "StepScheduled",
        "StepCompleted",
        "StepCompleted",
        "WorkflowCancelled",
    ]
    late = next(e for e in history if isinstance(e, StepCompleted))
    assert late.position == 0  # recorded for audit, changed nothing
    assert history[-1].reason == "customer asked"  # type: ignore[union-attr]


async def test_cancel_during_sleep_cancels_the_timer(make_driver: Make) -> None:
    @workflow
    async def napper() -> None:
        await sleep("1d")

    driver = make_driver(napper)
    run_id = driver.start(napper)
    assert len(driver.timers()) == 1
    driver.cancel(run_id)
    assert driver.status(run_id) == "cancelled"
    assert driver.timers() == ()


async def test_cancel_while_waiting_to_retry_stops_retrying(make_driver: Make, clock: FakeClock) -> None:
    log: list[str] = []
    _, failing = make_steps(log)

    @workflow
    async def wf() -> None:
        await failing()

    driver = make_driver(wf, failing)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert [t.kind for t in driver.timers()] == ["retry"]
    driver.cancel(run_id)
    clock.advance("1h")
    await driver.run_until_idle()
    assert log == ["failing"]
    assert driver.status(run_id) == "cancelled" and driver.timers() == ()


async def test_shield_defers_cancellation_until_the_block_ends(make_driver: Make) -> None:
    log: list[str] = []
    work, _ = make_steps(log)

    @workflow
    async def wf() -> str:
        async with shield():
            await work("refund")
            await work("notify")
        await work("after")
        return "not reached"

    driver = make_driver(wf, work)
    run_id = driver.start(wf)
    driver.cancel(run_id, "stop")
    await driver.run_until_idle()
    assert log == ["refund", "notify"]
    assert driver.status(run_id) == "cancelled"


async def test_workflow_may_catch_cancellation_and_complete(make_driver: Make) -> None:
    log: list[str] = []
    work, _ = make_steps(log)

    @workflow
    async def wf() -> str:
        try:
            await sleep("1h")
        except CancellationError as exc:
            await work("compensate")
            return f"compensated after: {exc}"
        return "slept"

    driver = make_driver(wf, work)
    run_id = driver.start(wf)
    driver.cancel(run_id, "too slow")
    await driver.run_until_idle()
    assert driver.result(run_id) == "compensated after: too slow"
    assert driver.status(run_id) == "completed"


async def test_second_cancel_and_cancel_after_finish_are_ignored(make_driver: Make) -> None:
    log: list[str] = []
    work, _ = make_steps(log)

    @workflow
    async def wf() -> None:
        try:
            await sleep("1h")
        finally:
            await work("cleanup")

    driver = make_driver(wf, work)
    run_id = driver.start(wf)
    assert driver.cancel(run_id).ignored is None
    assert driver.cancel(run_id).ignored == "cancellation was already requested"
    await driver.run_until_idle()
    assert "already finished (cancelled)" in (driver.cancel(run_id).ignored or "")


async def test_cancel_during_gather_cancels_every_branch(make_driver: Make) -> None:
    log: list[str] = []
    work, _ = make_steps(log)

    @workflow
    async def wf() -> object:
        import asyncio

        return await asyncio.gather(work("a"), work("b"), sleep("1h"))

    driver = make_driver(wf, work)
    run_id = driver.start(wf)
    driver.cancel(run_id)
    assert driver.status(run_id) == "cancelled" and driver.timers() == ()
    await driver.run_until_idle()  # late results of both abandoned steps are recorded, nothing else
    assert sorted(log) == ["a", "b"]
    assert [type(e).__name__ for e in driver.history(run_id)][-1] == "WorkflowCancelled"
