"""Child workflows: cancellation from the parent, replay divergence, duplicate completions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from child_workflows import (
    Make,
    child_started,
    double,
    doubler,
    fire_and_forget,
    parent_waits,
)

from engine import (
    NonDeterminismError,
    Registry,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from engine.runtime import (
    CancelWorkflow,
    Run,
    RunFinished,
    WorkflowCancelled,
)
from engine.testing import FakeClock, InMemoryDriver


async def test_cancelling_the_parent_cancels_the_child(make_driver: Make, event_names: Callable) -> None:
    log: list[str] = []

    @step
    async def note(text: str) -> None:
        log.append(text)

    @workflow
    async def slow_child() -> None:
        try:
            await sleep("1d")
        except Exception as exc:
            await note(f"child saw {type(exc).__name__}")
            raise

    @workflow
    async def parent() -> None:
        try:
            await start_child_workflow(slow_child)
        finally:
            await note("parent finally")

    driver = make_driver(parent, slow_child, note)
    run_id = driver.start(parent)
    await driver.run_until_idle()
    child_id = child_started(driver, run_id)[0].child_run_id
    assert driver.status(child_id) == "running"
    transition = driver.cancel(run_id, "stop")
    cancels = [c for c in transition.commands if isinstance(c, CancelWorkflow)]
    assert [c.run_id for c in cancels] == [child_id] and "stop" in (cancels[0].reason or "")
    await driver.run_until_idle()
    assert driver.status(run_id) == "cancelled"
    assert driver.status(child_id) == "cancelled"
    assert sorted(log) == ["child saw CancellationError", "parent finally"]
    assert isinstance(driver.history(child_id)[-1], WorkflowCancelled)
    assert driver.timers() == ()
    # the child's RunFinished reached the finished parent and was ignored
    assert any(isinstance(i, RunFinished) and i.run_id == child_id for i, _ in driver.ignored)


async def test_cancelling_the_parent_cancels_fire_and_forget_children(make_driver: Make) -> None:
    @workflow
    async def sleeper() -> None:
        await sleep("1d")

    @workflow
    async def parent() -> None:
        await start_child_workflow(sleeper, wait_for_completion=False)
        await start_child_workflow(sleeper, wait_for_completion=False)
        await sleep("1h")

    driver = make_driver(parent, sleeper)
    run_id = driver.start(parent)
    await driver.run_until_idle()
    children = [e.child_run_id for e in child_started(driver, run_id)]
    driver.cancel(run_id)
    await driver.run_until_idle()
    assert [driver.status(c) for c in [run_id, *children]] == ["cancelled"] * 3


async def test_changed_child_workflow_name_diverges_on_replay(clock: FakeClock) -> None:
    driver = InMemoryDriver(Registry([parent_waits, doubler, double]), clock, run_ids=lambda: "p1")
    run_id = driver.start(parent_waits, 2)
    await driver.run_until_idle()

    @workflow(name="parent_waits")
    async def changed(x: int) -> int:
        y = await start_child_workflow(tripler, x)
        assert isinstance(y, int)
        return y

    @workflow
    async def tripler(x: int) -> int:
        return 3 * x

    with pytest.raises(
        NonDeterminismError,
        match="position 0: history recorded child 'doubler', the workflow code now issues child 'tripler'",
    ):
        Run.replay(Registry([changed, tripler]), driver.history(run_id))


async def test_duplicate_run_finished_is_ignored(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(fire_and_forget, doubler, double)
    run_id = driver.start(fire_and_forget, 1)
    await driver.run_until_idle()
    child_id = child_started(driver, run_id)[0].child_run_id
    before = driver.history(run_id)
    finished = RunFinished(
        run_id=child_id,
        workflow_name="doubler",
        status="completed",
        result=999,
        parent_run_id=run_id,
        parent_position=0,
        started_at=0,
        finished_at=0,
    )
    transition = driver.deliver(finished)
    assert transition.ignored is not None and "finished" in transition.ignored  # parent is done
    assert driver.history(run_id) == before


async def test_duplicate_run_finished_while_running_is_ignored(make_driver: Make) -> None:
    @workflow
    async def parent() -> int:
        value = await start_child_workflow(doubler, 1)
        await sleep("1h")
        assert isinstance(value, int)
        return value

    driver = make_driver(parent, doubler, double)
    run_id = driver.start(parent)
    await driver.run_until_idle()
    child_id = child_started(driver, run_id)[0].child_run_id
    length = len(driver.history(run_id))
    dup = RunFinished(
        run_id=child_id,
        workflow_name="doubler",
        status="completed",
        result=999,
        parent_run_id=run_id,
        parent_position=0,
        started_at=0,
        finished_at=0,
    )
    transition = driver.deliver(dup)
    assert transition.ignored is not None and "already resolved" in transition.ignored
    unknown = RunFinished(
        run_id="x",
        workflow_name="doubler",
        status="completed",
        parent_run_id=run_id,
        parent_position=7,
        started_at=0,
        finished_at=0,
    )
    assert "no child workflow" in (driver.deliver(unknown).ignored or "")
    assert len(driver.history(run_id)) == length
    assert isinstance(driver.clock, FakeClock)
    driver.clock.advance(3_600_000)
    await driver.run_until_idle()
    assert driver.result(run_id) == 2
