"""The parent close policy: a parent that ends (completes, fails, is cancelled, continues as new) cancels the
children still running with policy "cancel"; "abandon" leaves them running. Recorded in both histories."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import pytest
from child_workflows import Make, child_started

from engine import (
    ChildWorkflowHandle,
    EventLimitExceededError,
    EventLimits,
    NonDeterminismError,
    Registry,
    continue_as_new,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from engine.runtime import (
    CallArgs,
    CancelRequested,
    CancelWorkflow,
    ChildWorkflowCancelRequested,
    ChildWorkflowStarted,
    Run,
    RunFinished,
    StartWorkflow,
    TimerFired,
    WorkflowCancelled,
    WorkflowFailed,
)
from engine.testing import FakeClock, InMemoryDriver

CLEANUPS: list[str] = []


@step
async def cleanup(tag: str) -> None:
    CLEANUPS.append(tag)


@workflow
async def sleeper(tag: str) -> str:
    try:
        await sleep("1h")
    finally:
        await cleanup(tag)
    return f"{tag} woke"


@workflow
async def leaves(policy: Literal["cancel", "abandon"]) -> str:
    await start_child_workflow(sleeper, "left", wait_for_completion=False, parent_close_policy=policy)
    return "parent done"


@workflow
async def breaks() -> None:
    await start_child_workflow(sleeper, "orphan", wait_for_completion=False)
    raise ValueError("parent broke")


@workflow
async def moves_on(round_no: int) -> str:
    if round_no == 0:
        await start_child_workflow(sleeper, "old round", wait_for_completion=False)
        continue_as_new(1)
    return "next round"


@workflow
async def cancelled_parent() -> None:
    await start_child_workflow(sleeper, "kept", wait_for_completion=False, parent_close_policy="abandon")
    try:
        await sleep("1d")
    finally:
        await start_child_workflow(sleeper, "late", wait_for_completion=False)  # started by the cleanup


@pytest.fixture(autouse=True)
def _clear() -> None:
    CLEANUPS.clear()


def cancels(driver: InMemoryDriver, run_id: str) -> list[ChildWorkflowCancelRequested]:
    return [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowCancelRequested)]


def child_reason(driver: InMemoryDriver, child_id: str) -> str | None:
    requested = [e for e in driver.history(child_id) if isinstance(e, CancelRequested)]
    assert len(requested) == 1
    return requested[0].reason


async def test_a_completed_parent_cancels_its_running_child(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(leaves, sleeper, cleanup)
    run_id = driver.start(leaves, "cancel")
    await driver.run_until_idle()
    assert driver.result(run_id) == "parent done"
    child = child_started(driver, run_id)[0]
    assert child.parent_close_policy == "cancel"
    assert event_names(driver.history(run_id)) == [
        "WorkflowStarted",
        "ChildWorkflowStarted",
        "ChildWorkflowCancelRequested",
        "WorkflowCompleted",
    ]
    [asked] = cancels(driver, run_id)
    assert (asked.position, asked.child_run_id, asked.command_position) == (0, child.child_run_id, None)
    assert asked.reason == f"parent run {run_id} completed"
    assert driver.status(child.child_run_id) == "cancelled"
    assert child_reason(driver, child.child_run_id) == asked.reason  # the child's history names the parent
    assert CLEANUPS == ["left"]  # the child's cleanup ran
    assert isinstance(driver.history(child.child_run_id)[-1], WorkflowCancelled)
    assert driver.timers() == ()
    # a redelivered cancel changes nothing
    again = driver.deliver(CancelWorkflow(run_id=child.child_run_id, reason=asked.reason, requested_at=0))
    assert again.ignored is not None and again.events == ()


async def test_an_abandoned_child_outlives_its_parent(make_driver: Make, clock: FakeClock) -> None:
    driver = make_driver(leaves, sleeper, cleanup)
    run_id = driver.start(leaves, "abandon")
    await driver.run_until_idle()
    assert driver.result(run_id) == "parent done"
    child = child_started(driver, run_id)[0]
    assert child.parent_close_policy == "abandon" and cancels(driver, run_id) == []
    assert driver.status(child.child_run_id) == "running"
    clock.advance("1h")
    await driver.run_until_idle()
    assert driver.result(child.child_run_id) == "left woke"
    # its RunFinished reached the finished parent and was ignored
    assert any(isinstance(i, RunFinished) and i.run_id == child.child_run_id for i, _ in driver.ignored)


async def test_a_failed_parent_cancels_its_running_child(make_driver: Make) -> None:
    driver = make_driver(breaks, sleeper, cleanup)
    run_id = driver.start(breaks)
    await driver.run_until_idle()
    with pytest.raises(ValueError, match="parent broke"):
        driver.result(run_id)
    [asked] = cancels(driver, run_id)
    assert asked.reason == f"parent run {run_id} failed"
    assert isinstance(driver.history(run_id)[-1], WorkflowFailed)
    assert driver.status(asked.child_run_id) == "cancelled" and CLEANUPS == ["orphan"]


async def test_a_parent_that_continues_as_new_cancels_its_running_child(make_driver: Make) -> None:
    driver = make_driver(moves_on, sleeper, cleanup)
    run_id = driver.start(moves_on, 0)
    await driver.run_until_idle()
    assert driver.result(run_id) == "next round"
    [asked] = cancels(driver, run_id)
    assert asked.reason == f"parent run {run_id} continued as new"
    assert driver.status(asked.child_run_id) == "cancelled" and CLEANUPS == ["old round"]


async def test_a_cancelled_parent_cancels_what_its_cleanup_started_and_abandons_what_it_was_told(
    make_driver: Make, clock: FakeClock
) -> None:
    driver = make_driver(cancelled_parent, sleeper, cleanup)
    run_id = driver.start(cancelled_parent)
    await driver.run_until_idle()
    kept = child_started(driver, run_id)[0]
    transition = driver.cancel(run_id, "stop")
    late = child_started(driver, run_id)[1]
    # only the child the cleanup started is asked (when the parent ends); the abandoned one is not
    assert [c.run_id for c in transition.commands if isinstance(c, CancelWorkflow)] == [late.child_run_id]
    await driver.run_until_idle()
    assert driver.status(run_id) == "cancelled"
    assert (kept.parent_close_policy, late.parent_close_policy) == ("abandon", "cancel")
    [asked] = cancels(driver, run_id)
    assert asked.child_run_id == late.child_run_id and asked.reason == f"parent run {run_id} cancelled"
    assert driver.status(late.child_run_id) == "cancelled"
    assert driver.status(kept.child_run_id) == "running"
    clock.advance("1h")
    await driver.run_until_idle()
    assert driver.result(kept.child_run_id) == "kept woke"


async def test_a_child_asked_when_the_parent_was_cancelled_is_not_asked_again_at_its_end(make_driver: Make) -> None:
    @workflow
    async def waits() -> None:
        await start_child_workflow(sleeper, "waited")

    driver = make_driver(waits, sleeper, cleanup)
    run_id = driver.start(waits)
    await driver.run_until_idle()
    driver.cancel(run_id, "stop")
    await driver.run_until_idle()
    [asked] = cancels(driver, run_id)
    assert asked.reason == f"parent run {run_id} cancelled: stop"
    names = [type(e).__name__ for e in driver.history(run_id)]
    assert names.index("CancelRequested") < names.index("ChildWorkflowCancelRequested")
    assert driver.status(asked.child_run_id) == "cancelled"


async def test_histories_are_identical_with_and_without_replay(clock: FakeClock) -> None:
    histories = []
    for always_replay in (False, True):
        ids = (f"r{n}" for n in range(1, 1000))
        driver = InMemoryDriver(
            Registry([leaves, breaks, moves_on, cancelled_parent, sleeper, cleanup]),
            FakeClock(clock.now_ms()),
            always_replay=always_replay,
            run_ids=ids.__next__,
        )
        runs = [driver.start(leaves, "cancel"), driver.start(breaks), driver.start(moves_on, 0)]
        runs.append(driver.start(cancelled_parent))
        await driver.run_until_idle()
        driver.cancel(runs[-1])
        await driver.run_until_idle()
        children = [e.child_run_id for r in runs for e in child_started(driver, r)]
        histories.append({r: driver.history(r) for r in runs + children})
    assert histories[0] == histories[1]
    for history in histories[0].values():  # and every history replays to its end
        run = Run.replay(Registry([leaves, breaks, moves_on, cancelled_parent, sleeper, cleanup]), history)
        assert run.finished or run.status == "running"
        run.close()


async def test_a_child_that_ends_as_its_parent_closes_ignores_the_request(clock: FakeClock) -> None:
    """The child's RunFinished is on its way while the parent ends: the parent asks, the finished child
    ignores the request, and the parent (finished) ignores the child's RunFinished."""

    @workflow
    async def quick(tag: str) -> str:
        return tag

    @workflow
    async def parent() -> str:
        await start_child_workflow(quick, "q", wait_for_completion=False)
        await sleep("1m")
        return "done"

    registry = Registry([parent, quick])
    start = StartWorkflow(run_id="p", workflow_name="parent", args=CallArgs((), {}), requested_at=0)
    parent_run, first = Run.start(registry, start, clock.now_ms())
    child_start = next(c for c in first.commands if isinstance(c, StartWorkflow))
    child_run, child_first = Run.start(registry, child_start, clock.now_ms())
    finished = next(c for c in child_first.commands if isinstance(c, RunFinished))
    fired = TimerFired(run_id="p", timer_id="sleep:1:1", position=1, kind="sleep", fire_at=0, fired_at=0)
    ending = parent_run.handle(fired, clock.now_ms())  # the parent ends before the child's RunFinished arrives
    assert [type(e).__name__ for e in ending.events] == [
        "TimerElapsed",
        "ChildWorkflowCancelRequested",
        "WorkflowCompleted",
    ]
    cancel = next(c for c in ending.commands if isinstance(c, CancelWorkflow))
    assert cancel.run_id == child_run.run_id
    assert child_run.handle(cancel, clock.now_ms()).ignored is not None  # the child has finished
    assert parent_run.handle(finished, clock.now_ms()).ignored is not None  # the parent has finished
    parent_run.close()
    child_run.close()


async def test_replay_keeps_the_recorded_policy_and_reads_a_missing_one_as_cancel(clock: FakeClock) -> None:
    @workflow(name="parent")
    async def abandons() -> None:
        await start_child_workflow(sleeper, "x", wait_for_completion=False, parent_close_policy="abandon")
        await sleep("1m")

    @workflow(name="parent")
    async def cancels_now() -> None:
        await start_child_workflow(sleeper, "x", wait_for_completion=False)  # code changed to the default
        await sleep("1m")

    start = StartWorkflow(run_id="p", workflow_name="parent", args=CallArgs((), {}), requested_at=0)
    fired = TimerFired(run_id="p", timer_id="sleep:1:1", position=1, kind="sleep", fire_at=0, fired_at=0)
    run, first = Run.start(Registry([abandons, sleeper, cleanup]), start, clock.now_ms())
    run.close()
    history = list(first.events)
    replayed = Run.replay(Registry([cancels_now, sleeper, cleanup]), history)
    ending = replayed.handle(fired, clock.now_ms())
    assert not [e for e in ending.events if isinstance(e, ChildWorkflowCancelRequested)]  # "abandon" recorded
    replayed.close()
    # a ChildWorkflowStarted written before the field existed reads as null: "cancel"
    old = [
        dataclasses.replace(e, parent_close_policy=None) if isinstance(e, ChildWorkflowStarted) else e for e in history
    ]
    replayed = Run.replay(Registry([abandons, sleeper, cleanup]), old)
    ending = replayed.handle(fired, clock.now_ms())
    assert [type(e).__name__ for e in ending.events][1:] == ["ChildWorkflowCancelRequested", "WorkflowCompleted"]
    replayed.close()


async def test_a_parent_that_fails_on_a_divergence_still_cancels_its_running_child(make_driver: Make) -> None:
    @workflow(name="parent")
    async def before() -> None:
        await start_child_workflow(sleeper, "d", wait_for_completion=False)
        await sleep("1m")

    @workflow(name="parent")
    async def after() -> None:
        await sleep("1m")  # the child start is gone: the history no longer matches

    driver = make_driver(before, sleeper, cleanup)
    run_id = driver.start(before)
    await driver.run_until_idle()
    driver.registry = Registry([after, sleeper, cleanup])
    driver.evict(run_id)
    assert isinstance(driver.clock, FakeClock)
    driver.clock.advance("1m")
    await driver.run_until_idle()
    with pytest.raises(NonDeterminismError):
        driver.result(run_id)
    [asked] = cancels(driver, run_id)
    assert asked.reason == f"parent run {run_id} failed"
    assert driver.status(asked.child_run_id) == "cancelled"


async def test_a_parent_failing_on_its_hard_event_limit_cancels_its_running_child(make_driver: Make) -> None:
    @workflow(event_limits=EventLimits(soft=5, hard=6))
    async def greedy() -> None:
        await start_child_workflow(sleeper, "g", wait_for_completion=False)
        for _ in range(10):
            await cleanup("parent")

    driver = make_driver(greedy, sleeper, cleanup)
    run_id = driver.start(greedy)
    await driver.run_until_idle()
    with pytest.raises(EventLimitExceededError):
        driver.result(run_id)
    [asked] = cancels(driver, run_id)
    assert driver.history(run_id)[-2] == asked and asked.reason == f"parent run {run_id} failed"
    assert driver.status(asked.child_run_id) == "cancelled"


@workflow(event_limits=EventLimits(soft=5, hard=6))
async def starts_too_late() -> None:
    for i in range(10):
        await cleanup("parent")
        if i == 1:  # in the transition the hard limit drops: this child is never started
            await start_child_workflow(sleeper, "never", wait_for_completion=False)


@workflow(event_limits=EventLimits(soft=5, hard=6))
async def asks_too_late() -> None:
    handle = await start_child_workflow(sleeper, "asked", wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    for i in range(10):
        await cleanup("parent")
        if i == 1:  # in the transition the hard limit drops: this request is never sent
            await handle.cancel("from the handle")


async def test_the_hard_event_limit_drops_a_child_start_and_a_cancel_request_with_their_transition(
    make_driver: Make,
) -> None:
    driver = make_driver(starts_too_late, asks_too_late, sleeper, cleanup)
    never, asked = driver.start(starts_too_late), driver.start(asks_too_late)
    await driver.run_until_idle()
    for run_id in (never, asked):
        with pytest.raises(EventLimitExceededError):
            driver.result(run_id)
    assert child_started(driver, never) == [] and cancels(driver, never) == []
    [request] = cancels(driver, asked)  # asked by the close policy instead, as the handle's request was dropped
    assert (request.command_position, request.reason) == (None, f"parent run {asked} failed")
    assert driver.status(request.child_run_id) == "cancelled"


async def test_an_unknown_policy_is_refused_at_the_call(make_driver: Make) -> None:
    driver = make_driver(leaves, sleeper, cleanup)
    run_id = driver.start(leaves, "terminate")
    await driver.run_until_idle()
    with pytest.raises(ValueError, match="parent_close_policy must be 'cancel' or 'abandon'"):
        driver.result(run_id)
    assert child_started(driver, run_id) == []
