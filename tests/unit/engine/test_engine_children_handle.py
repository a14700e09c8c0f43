"""ChildWorkflowHandle: get_status / is_running / is_terminal from the parent's history, cancel() as a recorded
command, result(timeout=...) racing a durable timer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from child_workflows import Make, child_started

from engine import (
    CancellationError,
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    KflowError,
    NonDeterminismError,
    Registry,
    RunStatus,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from engine.runtime import (
    CallArgs,
    CancelRequested,
    ChildWorkflowCancelRequested,
    Run,
    StartWorkflow,
    TimerElapsed,
    TimerScheduled,
)
from engine.testing import FakeClock, InMemoryDriver

CLEANUPS: list[str] = []


@step
async def tidy(tag: str) -> None:
    CLEANUPS.append(tag)


@workflow
async def naps(minutes: int) -> str:
    try:
        await sleep(minutes * 60)
    finally:
        await tidy(f"naps {minutes}")
    return f"slept {minutes}m"


@workflow
async def trips(minutes: int) -> None:
    await sleep(minutes * 60)
    raise ValueError("tripped")


async def _observe(handle: ChildWorkflowHandle) -> list[object]:
    return [await handle.get_status(), await handle.is_running(), await handle.is_terminal()]


@workflow
async def watches(child: str) -> list[object]:
    handle = await start_child_workflow(child, 10, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    seen = await _observe(handle)
    await sleep("1h")  # the child ends meanwhile
    return seen + await _observe(handle)


@workflow
async def stops(reason: str | None) -> list[object]:
    handle = await start_child_workflow(naps, 60, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    first = await handle.cancel(reason)
    again = await handle.cancel("twice")  # asked already: not asked again
    try:
        await handle.result()
    except ChildWorkflowFailedError as exc:
        outcome = exc.error_type
    return [first, again, outcome, await handle.get_status(), await handle.cancel()]


@workflow
async def impatient(wait: str) -> list[object]:
    handle = await start_child_workflow(naps, 30, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    try:
        return ["result", await handle.result(timeout=wait)]
    except TimeoutError as exc:
        seen: list[object] = ["timeout", str(exc), await handle.get_status()]
    return [*seen, await handle.result()]  # the child kept running: wait for it


@pytest.fixture(autouse=True)
def _clear() -> None:
    CLEANUPS.clear()


def _advance(driver: InMemoryDriver, duration: str) -> None:
    assert isinstance(driver.clock, FakeClock)
    driver.clock.advance(duration)


async def test_status_comes_from_the_parents_history(make_driver: Make) -> None:
    driver = make_driver(watches, naps, trips, tidy)
    done, failed = driver.start(watches, "naps"), driver.start(watches, "trips")
    await driver.run_until_idle()
    _advance(driver, "1h")
    await driver.run_until_idle()
    running = [RunStatus.RUNNING, True, False]
    assert driver.result(done) == [*running, RunStatus.COMPLETED, False, True]
    assert driver.result(failed) == [*running, RunStatus.FAILED, False, True]


async def test_cancel_is_recorded_and_reaches_the_child(make_driver: Make) -> None:
    driver = make_driver(stops, naps, tidy)
    run_id = driver.start(stops, "enough")
    await driver.run_until_idle()
    outcome = ["engine.CancellationError", RunStatus.CANCELLED, False]  # a child that ended: cancel() is False
    assert driver.result(run_id) == [True, True, *outcome]
    [asked] = [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowCancelRequested)]
    child = child_started(driver, run_id)[0]
    assert (asked.position, asked.command_position, asked.child_run_id) == (0, 1, child.child_run_id)
    assert asked.reason == "enough"
    assert [e.reason for e in driver.history(child.child_run_id) if isinstance(e, CancelRequested)] == ["enough"]
    assert driver.status(child.child_run_id) == "cancelled" and CLEANUPS == ["naps 60"]


async def test_cancel_without_a_reason_names_the_parent(make_driver: Make) -> None:
    driver = make_driver(stops, naps, tidy)
    run_id = driver.start(stops, None)
    await driver.run_until_idle()
    child = child_started(driver, run_id)[0]
    reasons = [e.reason for e in driver.history(child.child_run_id) if isinstance(e, CancelRequested)]
    assert reasons == [f"cancelled by parent run {run_id}"]


async def test_a_result_timeout_leaves_the_child_running(make_driver: Make) -> None:
    driver = make_driver(impatient, naps, tidy)
    run_id = driver.start(impatient, "10m")
    await driver.run_until_idle()
    _advance(driver, "10m")
    await driver.run_until_idle()
    assert driver.status(run_id) == "running"
    child = child_started(driver, run_id)[0]
    assert driver.status(child.child_run_id) == "running"
    _advance(driver, "20m")
    await driver.run_until_idle()
    outcome = driver.result(run_id)
    assert isinstance(outcome, list)
    kind, message, status, result = outcome
    assert (kind, status, result) == ("timeout", RunStatus.RUNNING, "slept 30m")
    assert "did not complete within 600,000 ms" in message and child.child_run_id in message
    timers = [e for e in driver.history(run_id) if isinstance(e, (TimerScheduled, TimerElapsed))]
    assert [(type(e).__name__, e.kind, e.position) for e in timers] == [
        ("TimerScheduled", "child_timeout", 1),
        ("TimerElapsed", "child_timeout", 1),
    ]


async def test_a_child_that_ends_first_beats_the_timeout(make_driver: Make) -> None:
    driver = make_driver(impatient, naps, tidy)
    run_id = driver.start(impatient, "2h")
    await driver.run_until_idle()
    assert [t.kind for t in driver.timers() if t.run_id == run_id] == ["child_timeout"]
    _advance(driver, "30m")
    await driver.run_until_idle()
    assert driver.result(run_id) == ["result", "slept 30m"]
    assert not [e for e in driver.history(run_id) if isinstance(e, TimerElapsed)]
    assert [t for t in driver.timers() if t.run_id == run_id] == []  # the timeout timer was cancelled


async def test_a_result_timeout_on_a_child_that_has_ended_arms_no_timer(make_driver: Make) -> None:
    @workflow
    async def late() -> object:
        handle = await start_child_workflow(naps, 1, wait_for_completion=False)
        assert isinstance(handle, ChildWorkflowHandle)
        await sleep("2m")
        return await handle.result(timeout=1)

    driver = make_driver(late, naps, tidy)
    run_id = driver.start(late)
    await driver.run_until_idle()
    _advance(driver, "2m")
    await driver.run_until_idle()
    assert driver.result(run_id) == "slept 1m"
    assert [e.kind for e in driver.history(run_id) if isinstance(e, TimerScheduled)] == ["sleep"]


async def test_cancelling_the_parent_while_it_waits_with_a_timeout(make_driver: Make) -> None:
    driver = make_driver(impatient, naps, tidy)
    run_id = driver.start(impatient, "2h")
    await driver.run_until_idle()
    driver.cancel(run_id, "stop")
    await driver.run_until_idle()
    with pytest.raises(CancellationError):
        driver.result(run_id)
    assert driver.timers() == ()  # the timeout timer (and the child's sleep) were cancelled
    assert driver.status(child_started(driver, run_id)[0].child_run_id) == "cancelled"


async def test_a_removed_cancel_call_diverges_on_replay(clock: FakeClock) -> None:
    @workflow(name="stops")
    async def changed(reason: str | None) -> None:
        handle = await start_child_workflow(naps, 60, wait_for_completion=False)
        assert isinstance(handle, ChildWorkflowHandle)
        await sleep("1m")  # where the history has the cancel

    driver = InMemoryDriver(Registry([stops, naps, tidy]), clock, run_ids=lambda: "p1")
    run_id = driver.start(stops, "x")
    await driver.run_until_idle()
    with pytest.raises(NonDeterminismError, match="position 1: history recorded child_cancel"):
        Run.replay(Registry([changed, naps, tidy]), driver.history(run_id))


async def test_a_timeout_removed_from_the_code_diverges_on_replay(clock: FakeClock) -> None:
    @workflow(name="impatient")
    async def changed(wait: str) -> object:
        handle = await start_child_workflow(naps, 30, wait_for_completion=False)
        assert isinstance(handle, ChildWorkflowHandle)
        return await handle.result()

    registry = Registry([impatient, naps, tidy])
    start = StartWorkflow(run_id="p", workflow_name="impatient", args=CallArgs(("5m",), {}), requested_at=0)
    run, first = Run.start(registry, start, clock.now_ms())
    run.close()
    with pytest.raises(
        NonDeterminismError, match="history recorded child_timeout, the workflow code now issues nothing"
    ):
        Run.replay(Registry([changed, naps, tidy]), first.events)


async def test_the_handle_works_only_inside_its_own_run(make_driver: Make, event_names: Callable) -> None:
    outside = ChildWorkflowHandle("c1")
    for call in (outside.get_status(), outside.cancel(), outside.result()):
        with pytest.raises(KflowError, match="inside a running workflow"):
            await call
    kept: list[ChildWorkflowHandle] = []

    @workflow
    async def keeps() -> None:
        handle = await start_child_workflow(naps, 1, wait_for_completion=False)
        assert isinstance(handle, ChildWorkflowHandle)
        kept.append(handle)

    @workflow
    async def borrows() -> None:
        await kept[0].get_status()

    driver = make_driver(keeps, borrows, naps, tidy)
    driver.start(keeps)
    await driver.run_until_idle()
    handle = kept[0]
    assert (handle.child_id, handle.child_workflow_name) == (handle.child_run_id, "naps")
    assert handle.parent_run_id is not None and "naps" in repr(handle)
    other = driver.start(borrows)
    await driver.run_until_idle()
    with pytest.raises(KflowError, match="does not belong to run"):
        driver.result(other)
