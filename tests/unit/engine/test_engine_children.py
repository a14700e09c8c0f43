"""Child workflows: results, failures, fire-and-forget handles, cancellation, replay, duplicates."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import (
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    KflowError,
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
    CancelWorkflow,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Run,
    RunFinished,
    StartWorkflow,
    WorkflowCancelled,
    WorkflowStarted,
)
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def double(x: int) -> int:
    return 2 * x


@workflow
async def doubler(x: int) -> int:
    return await double(x)


@workflow
async def exploder(message: str) -> None:
    await sleep(0)
    raise ValueError(message)


@workflow
async def parent_waits(x: int) -> int:
    y = await start_child_workflow(doubler, x)
    assert isinstance(y, int)
    z = await start_child_workflow("doubler", x=y)  # by name, kwargs passed through
    assert isinstance(z, int)
    return z + 1


@workflow
async def parent_catches(message: str) -> str:
    try:
        await start_child_workflow(exploder, message)
    except ChildWorkflowFailedError as exc:
        return f"caught: {exc}"
    return "not reached"


@workflow
async def parent_propagates() -> None:
    await start_child_workflow(exploder, "boom")


@workflow
async def fire_and_forget(x: int) -> list[object]:
    handle = await start_child_workflow(doubler, x, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    mine = await double(100)  # the parent keeps working while the child runs
    return [handle.child_run_id, mine, await handle.result()]


@workflow
async def counter(n: int) -> int:
    await sleep(0)
    if n < 3:
        continue_as_new(n + 1)
    return n * 10


@workflow
async def parent_of_chain() -> int:
    result = await start_child_workflow(counter, 0)
    assert isinstance(result, int)
    return result


def child_started(driver: InMemoryDriver, run_id: str) -> list[ChildWorkflowStarted]:
    return [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowStarted)]


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
        StartWorkflow(run_id="p1", workflow_name="parent_waits", args=_args(3), requested_at=clock.now_ms()),
        clock.now_ms(),
    )
    (command,) = [c for c in transition.commands if isinstance(c, StartWorkflow)]
    started = [e for e in transition.events if isinstance(e, ChildWorkflowStarted)][0]
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
    completed = [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowCompleted)][0]
    assert completed.child_run_id == child_started(driver, run_id)[0].child_run_id


async def test_own_run_finished_and_foreign_completions_are_ignored(clock: FakeClock) -> None:
    registry = Registry([parent_waits, doubler, double])
    run, _ = Run.start(
        registry,
        StartWorkflow(run_id="p1", workflow_name="parent_waits", args=_args(1), requested_at=0),
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


def _args(*args: object) -> CallArgs:
    return CallArgs(tuple(args), {})
