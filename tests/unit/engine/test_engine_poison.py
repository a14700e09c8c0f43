"""Poison workflow code fails its run, never the host: SystemExit, KeyboardInterrupt, stray CancelledError, code that
never yields (the activation budget), exceptions that cannot be printed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest

from engine import (
    ActivationBudgetExceededError,
    CancellationError,
    EventLimits,
    PoisonCodeError,
    Registry,
    shield,
    step,
    workflow,
)
from engine.runtime import ErrorInfo, Run, WorkflowFailed, error_info
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def add(a: int, b: int) -> int:
    return a + b


@workflow
async def healthy(a: int) -> int:
    return await add(a, 1)


def failure(driver: InMemoryDriver, run_id: str) -> ErrorInfo:
    """The ErrorInfo the run failed with (asserting it failed)."""
    assert driver.status(run_id) == "failed"
    last = driver.history(run_id)[-1]
    assert isinstance(last, WorkflowFailed)
    return last.error


async def assert_healthy_run_completes(driver: InMemoryDriver) -> None:
    run_id = driver.start(healthy, 41)
    await driver.run_until_idle()
    assert driver.result(run_id) == 42


# --- SystemExit / KeyboardInterrupt in workflow code ---------------------------------------------------------


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()], ids=["SystemExit", "KeyboardInterrupt"])
async def test_workflow_raising_systemexit_or_keyboardinterrupt_fails_only_its_run(
    make_driver: Make, raised: BaseException
) -> None:
    @workflow
    async def quitter() -> None:
        await add(1, 2)
        raise raised

    driver = make_driver(quitter, healthy, add)
    run_id = driver.start(quitter)
    await driver.run_until_idle()
    error = failure(driver, run_id)
    assert error.type == "engine.PoisonCodeError" and error.retryable is False
    assert f"workflow 'quitter' run {run_id} raised {type(raised).__name__}" in error.message
    assert error.traceback is not None and type(raised).__name__ in error.traceback
    with pytest.raises(PoisonCodeError, match="fail the run instead of stopping the host"):
        driver.result(run_id)
    await assert_healthy_run_completes(driver)


async def test_systemexit_in_a_side_task_or_a_done_callback_fails_the_run(make_driver: Make) -> None:
    @workflow
    async def side_task() -> str:
        async def leave() -> None:
            sys.exit("bye")

        asyncio.get_running_loop().create_task(leave())  # never awaited
        await add(1, 2)
        return "unreachable"

    @workflow
    async def callback() -> str:
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: sys.exit(1))
        future.set_result(None)
        await add(1, 2)
        return "unreachable"

    driver = make_driver(side_task, callback, healthy, add)
    for wf in (side_task, callback):
        run_id = driver.start(wf)
        await driver.run_until_idle()
        assert "raised SystemExit" in failure(driver, run_id).message
    await assert_healthy_run_completes(driver)


async def test_systemexit_raised_in_cleanup_during_teardown_does_not_escape(clock: FakeClock) -> None:
    @workflow
    async def stubborn() -> None:
        try:
            await add(1, 2)
        finally:
            sys.exit("not now")  # runs when the Run is closed (evicted)

    driver = InMemoryDriver(Registry([stubborn, add]), clock)
    run_id = driver.start(stubborn)
    driver.evict(run_id)  # unwinds the coroutine: its finally raises SystemExit on the workflow loop
    await driver.run_until_idle()  # the replayed run goes on: the step completes, then the code exits
    assert "raised SystemExit('not now')" in failure(driver, run_id).message


# --- asyncio.CancelledError without a cancellation; real cancellation -----------------------------------------


async def test_stray_cancelled_error_fails_the_run(make_driver: Make) -> None:
    @workflow
    async def stray() -> None:
        await add(1, 2)
        raise asyncio.CancelledError()

    @workflow
    async def cancels_own_task() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await add(1, 2)

    driver = make_driver(stray, cancels_own_task, healthy, add)
    for wf in (stray, cancels_own_task):
        run_id = driver.start(wf)
        await driver.run_until_idle()
        error = failure(driver, run_id)
        assert error.type == "engine.PoisonCodeError"
        assert "ended with asyncio.CancelledError although no cancellation was requested" in error.message
    await assert_healthy_run_completes(driver)


async def test_a_requested_cancel_still_ends_cancelled_with_shield_cleanup(make_driver: Make) -> None:
    log: list[str] = []

    @step
    async def note(what: str) -> str:
        log.append(what)
        return what

    @workflow
    async def careful() -> None:
        try:
            await note("work")
        finally:
            async with shield():
                await note("cleanup")

    @workflow
    async def translates() -> None:
        try:
            await note("work")
        except CancellationError:
            raise asyncio.CancelledError() from None  # a cancel was requested: still "cancelled"

    driver = make_driver(careful, translates, note)
    for wf in (careful, translates):
        run_id = driver.start(wf)
        driver.cancel(run_id, "asked")
        await driver.run_until_idle()
        assert driver.status(run_id) == "cancelled"
        with pytest.raises(CancellationError):
            driver.result(run_id)
    assert log == ["work", "cleanup", "work"]


# --- the activation budget -----------------------------------------------------------------------------------


@workflow
async def spinner(before: int) -> None:
    for _ in range(before):
        await add(1, 1)
    while True:
        await asyncio.sleep(0)


@workflow
async def stubborn_spinner() -> None:
    while True:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:  # swallows even the teardown's cancellation
            pass


async def test_code_that_never_yields_fails_its_run_at_the_budget(clock: FakeClock, always_replay: bool) -> None:
    limits = EventLimits(activation_steps=500)
    driver = InMemoryDriver(
        Registry([spinner, stubborn_spinner, healthy, add]), clock, always_replay=always_replay, event_limits=limits
    )
    spun, stubborn = driver.start(spinner, 2), driver.start(stubborn_spinner)
    await driver.run_until_idle()
    for run_id, name in ((spun, "spinner"), (stubborn, "stubborn_spinner")):
        error = failure(driver, run_id)
        assert error.type == "engine.ActivationBudgetExceededError" and error.retryable is False
        assert f"workflow {name!r} run {run_id}: one activation ran 500 event-loop callbacks" in error.message
        assert "EventLimits.activation_steps (500)" in error.message
        with pytest.raises(ActivationBudgetExceededError):
            driver.result(run_id)
    assert [type(e).__name__ for e in driver.history(spun)].count("StepCompleted") == 2
    await assert_healthy_run_completes(driver)
    # The recorded history replays to the same ending (the same budget stops the code at the same point).
    replayed = Run.replay(driver.registry, driver.history(spun), limits)
    assert replayed.status == "failed"
    replayed.close()


async def test_a_failed_spinner_replays_under_a_larger_budget(clock: FakeClock) -> None:
    driver = InMemoryDriver(Registry([spinner, add]), clock, event_limits=EventLimits(activation_steps=200))
    run_id = driver.start(spinner, 1)
    await driver.run_until_idle()
    assert failure(driver, run_id).type == "engine.ActivationBudgetExceededError"
    replayed = Run.replay(driver.registry, driver.history(run_id), EventLimits(activation_steps=2_000))
    assert replayed.status == "failed"
    replayed.close()


async def test_the_default_budget_stops_a_spinner(clock: FakeClock) -> None:
    driver = InMemoryDriver(Registry([spinner, add]), clock)
    run_id = driver.start(spinner, 0)
    assert "ran 1,000,000 event-loop callbacks" in failure(driver, run_id).message


@workflow
async def busy(rounds: int) -> int:
    """Legitimately many callbacks in one activation: ``rounds`` yields, then a step."""
    for _ in range(rounds):
        await asyncio.sleep(0)
    return await add(rounds, 0)


@workflow(event_limits=EventLimits(activation_steps=50_000))
async def busy_with_room(rounds: int) -> int:
    for _ in range(rounds):
        await asyncio.sleep(0)
    return await add(rounds, 0)


async def test_a_workflow_using_many_callbacks_completes_under_a_larger_budget(
    clock: FakeClock, always_replay: bool
) -> None:
    driver = InMemoryDriver(
        Registry([busy, busy_with_room, add]),
        clock,
        always_replay=always_replay,
        event_limits=EventLimits(activation_steps=1_000),
    )
    small, host_room, own_room = driver.start(busy, 100), driver.start(busy, 5_000), driver.start(busy_with_room, 5_000)
    await driver.run_until_idle()
    assert driver.result(small) == 100
    assert failure(driver, host_room).type == "engine.ActivationBudgetExceededError"
    assert driver.result(own_room) == 5_000  # the workflow's own limits win over the host's


def test_activation_steps_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="activation_steps"):
            EventLimits(activation_steps=bad)  # type: ignore[arg-type]


# --- exceptions that cannot be printed -----------------------------------------------------------------------


class Unprintable(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class Hostile(ValueError):
    """Even its str() and repr() raise BaseExceptions."""

    def __str__(self) -> str:
        raise SystemExit("from __str__")

    def __repr__(self) -> str:
        raise KeyboardInterrupt


def test_error_info_never_raises() -> None:
    info = error_info(Unprintable())
    assert info.type.endswith("Unprintable")
    assert info.message == "<unprintable Unprintable: str() raised RuntimeError>"
    assert info.traceback is not None
    hostile = error_info(Hostile())
    assert hostile.message == "<unprintable Hostile: str() raised SystemExit>"
    assert hostile.traceback is not None  # formatting it raised SystemExit: a note instead
    surrogate = error_info(ValueError("bad \ud800 text"))
    assert surrogate.message == "bad \\ud800 text"
    surrogate.message.encode("utf-8")


async def test_a_workflow_raising_an_unprintable_exception_fails_with_a_placeholder(make_driver: Make) -> None:
    @workflow
    async def mute() -> None:
        await add(1, 2)
        raise Unprintable()

    @workflow
    async def hostile_exit() -> None:
        raise SystemExit(Hostile())

    driver = make_driver(mute, hostile_exit, healthy, add)
    run_id = driver.start(mute)
    await driver.run_until_idle()
    assert failure(driver, run_id).message == "<unprintable Unprintable: str() raised RuntimeError>"
    exited = driver.start(hostile_exit)
    assert "raised <unprintable SystemExit: repr() raised KeyboardInterrupt>" in failure(driver, exited).message
    await assert_healthy_run_completes(driver)
