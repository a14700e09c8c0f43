"""Child workflows: results, failures, fire-and-forget handles, continue-as-new children, foreign completions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from child_workflows import (
    Make,
    args_of,
    child_started,
    counter,
    double,
    doubler,
    exploder,
    fire_and_forget,
    parent_catches,
    parent_of_chain,
    parent_propagates,
    parent_waits,
)

from engine import (
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    KflowError,
    Registry,
    sleep,
    start_child_workflow,
    workflow,
)
from engine.runtime import (
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Run,
    RunFinished,
    StartWorkflow,
    WorkflowStarted,
)
from engine.testing import FakeClock


async def test_child_result_is_returned(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(parent_waits, doubler, double)
    run_id = driver.start(parent_waits, 5)
    await driver.run_until_idle()
    assert driver.result(run_id) == 21
    assert event_names(driver.history(run_id)) == [
        "WorkflowStarted",
        "ChildWorkflowStarted",
        "ChildWorkflowCompleted",
        "ChildWorkflowStarted",
        "ChildWorkflowCompleted",
        "WorkflowCompleted",
    ]
    first, second = child_started(driver, run_id)
    assert (first.position, first.workflow_name, first.args.args) == (0, "doubler", (5,))
    assert second.args.kwargs == {"x": 10} and first.wait_for_completion
    child = driver.history(first.child_run_id)[0]
    assert isinstance(child, WorkflowStarted)
    assert (child.parent_run_id, child.parent_position) == (run_id, 0)
    assert driver.result(first.child_run_id) == 10
    done = [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowCompleted)]
    assert [(e.position, e.child_run_id, e.result) for e in done] == [
        (0, first.child_run_id, 10),
        (1, second.child_run_id, 20),
    ]


async def test_child_run_ids_are_deterministic_and_not_random(make_driver: Make) -> None:
    one, two = make_driver(parent_waits, doubler, double), make_driver(parent_waits, doubler, double)
    a, b = one.start(parent_waits, 1), two.start(parent_waits, 1)
    await one.run_until_idle()
    await two.run_until_idle()
    assert a == b  # same parent id ...
    ids_one = [e.child_run_id for e in child_started(one, a)]
    assert ids_one == [e.child_run_id for e in child_started(two, b)]  # ... same child ids
    assert len(set(ids_one)) == 2 and all(len(i) == 32 for i in ids_one)


async def test_start_emits_a_start_workflow_command_linked_to_the_parent(clock: FakeClock) -> None:
    registry = Registry([parent_waits, doubler, double])
    run, transition = Run.start(
        registry,
        StartWorkflow(run_id="p1", workflow_name="parent_waits", args=args_of(3), requested_at=clock.now_ms()),
        clock.now_ms(),
    )
    (command,) = [c for c in transition.commands if isinstance(c, StartWorkflow)]
    started = next(e for e in transition.events if isinstance(e, ChildWorkflowStarted))
    assert command.run_id == started.child_run_id
    assert (command.parent_run_id, command.parent_position, command.workflow_name) == ("p1", 0, "doubler")
    assert command.args.args == (3,) and command.requested_at == clock.now_ms()
    run.close()


async def test_child_failure_can_be_caught(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(parent_catches, exploder)
    run_id = driver.start(parent_catches, "kaput")
    await driver.run_until_idle()
    result = driver.result(run_id)
    assert isinstance(result, str)
    child_id = child_started(driver, run_id)[0].child_run_id
    assert result.startswith("caught: ") and child_id in result and "ValueError: kaput" in result
    assert driver.status(child_id) == "failed"
    failed = [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowFailed)]
    assert len(failed) == 1 and failed[0].error.type == "builtins.ValueError"


async def test_uncaught_child_failure_fails_the_parent(make_driver: Make) -> None:
    driver = make_driver(parent_propagates, exploder)
    run_id = driver.start(parent_propagates)
    await driver.run_until_idle()
    assert driver.status(run_id) == "failed"
    with pytest.raises(ChildWorkflowFailedError, match="boom"):
        driver.result(run_id)


async def test_fire_and_forget_handle_then_result(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(fire_and_forget, doubler, double)
    run_id = driver.start(fire_and_forget, 4)
    await driver.run_until_idle()
    result = driver.result(run_id)
    assert isinstance(result, list)
    child_id, mine, child_result = result
    assert (mine, child_result) == (200, 8)
    started = child_started(driver, run_id)[0]
    assert child_id == started.child_run_id and started.wait_for_completion is False
    assert "ChildWorkflowCompleted" in event_names(driver.history(run_id))


async def test_handle_result_raises_for_a_failed_child(make_driver: Make) -> None:
    @workflow
    async def later() -> str:
        handle = await start_child_workflow(exploder, "late", wait_for_completion=False)
        assert isinstance(handle, ChildWorkflowHandle)
        await sleep("1m")
        try:
            await handle.result()
        except ChildWorkflowFailedError as exc:
            return f"{exc.child_run_id == handle.child_run_id}:{exc.error_type}"
        return "no"

    driver = make_driver(later, exploder)
    run_id = driver.start(later)
    await driver.run_until_idle()
    assert isinstance(driver.clock, FakeClock)
    driver.clock.advance(60_000)
    await driver.run_until_idle()
    assert driver.result(run_id) == "True:builtins.ValueError"


async def test_child_that_continues_as_new_delivers_the_final_result(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(parent_of_chain, counter)
    run_id = driver.start(parent_of_chain)
    await driver.run_until_idle()
    assert driver.result(run_id) == 30
    assert event_names(driver.history(run_id)) == [
        "WorkflowStarted",
        "ChildWorkflowStarted",
        "ChildWorkflowCompleted",
        "WorkflowCompleted",
    ]
    reasons = [r for i, r in driver.ignored if isinstance(i, RunFinished)]
    assert len(reasons) == 3 and all("continued as new" in r for r in reasons)
    completed = next(e for e in driver.history(run_id) if isinstance(e, ChildWorkflowCompleted))
    assert completed.child_run_id == child_started(driver, run_id)[0].child_run_id


async def test_own_run_finished_and_foreign_completions_are_ignored(clock: FakeClock) -> None:
    registry = Registry([parent_waits, doubler, double])
    run, _ = Run.start(
        registry,
        StartWorkflow(run_id="p1", workflow_name="parent_waits", args=args_of(1), requested_at=0),
        clock.now_ms(),
    )
    foreign = RunFinished(
        run_id="c9",
        workflow_name="doubler",
        status="completed",
        parent_run_id="p2",
        parent_position=0,
        started_at=0,
        finished_at=0,
    )
    assert run.handle(foreign, clock.now_ms()).ignored is not None
    run.close()


async def test_start_child_workflow_outside_a_workflow_and_with_a_plain_function(make_driver: Make) -> None:
    with pytest.raises(KflowError, match="inside a running workflow"):
        await start_child_workflow(doubler, 1)

    async def plain() -> None:
        return None

    @workflow
    async def parent() -> None:
        await start_child_workflow(plain)

    driver = make_driver(parent)
    run_id = driver.start(parent)
    await driver.run_until_idle()
    with pytest.raises(KflowError, match="not decorated with @workflow"):
        driver.result(run_id)
