"""Poison steps fail their attempt, never the worker: SystemExit, KeyboardInterrupt (also from a thread), a
CancelledError nobody asked for; a real cancellation of the worker still propagates."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest

from engine import ActivationBudgetExceededError, KflowError, PoisonCodeError, Registry, step, workflow
from engine.runtime import CallArgs, ExecuteStep, WorkflowFailed, execute_step
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def add(a: int, b: int) -> int:
    return a + b


@workflow
async def healthy(a: int) -> int:
    return await add(a, 1)


# --- steps ---------------------------------------------------------------------------------------------------


@step(max_retries=3, retry_delay="1s")
async def exits_async() -> None:
    sys.exit(2)


@step(max_retries=3, retry_delay="1s")
def interrupts_in_thread() -> None:  # type: ignore[arg-type]
    raise KeyboardInterrupt


@step(max_retries=3, retry_delay="1s")
async def cancels_itself() -> None:
    raise asyncio.CancelledError()


@workflow
async def calls(name: str) -> str:
    target = {"exit": exits_async, "interrupt": interrupts_in_thread, "cancel": cancels_itself}[name]
    try:
        await target()
    except PoisonCodeError as exc:
        return f"caught: {exc}"
    return "unreachable"


@workflow
async def lets_it_fail() -> None:
    await exits_async()


@pytest.mark.parametrize(
    ("name", "step_name", "what"),
    [
        ("exit", "exits_async", "SystemExit(2), which would stop the worker"),
        ("interrupt", "interrupts_in_thread", "KeyboardInterrupt(), which would stop the worker"),
        ("cancel", "cancels_itself", "asyncio.CancelledError although the worker did not cancel it"),
    ],
)
async def test_a_poison_step_fails_its_attempt_without_retry(
    make_driver: Make, name: str, step_name: str, what: str
) -> None:
    driver = make_driver(calls, healthy, add, exits_async, interrupts_in_thread, cancels_itself)
    run_id = driver.start(calls, name)
    await driver.run_until_idle()
    outcome = driver.result(run_id)
    assert isinstance(outcome, str) and outcome.startswith(f"caught: step {step_name!r} (workflow 'calls' run")
    assert f"raised {what}; the attempt failed and is not retried" in outcome
    names = [type(e).__name__ for e in driver.history(run_id)]
    assert names.count("StepScheduled") == 1 and names.count("StepFailed") == 1
    assert driver.timers() == ()
    run = driver.start(healthy, 41)
    await driver.run_until_idle()
    assert driver.result(run) == 42


async def test_an_uncaught_poison_step_fails_the_run_with_its_error(make_driver: Make) -> None:
    driver = make_driver(lets_it_fail, exits_async)
    run_id = driver.start(lets_it_fail)
    await driver.run_until_idle()
    assert driver.status(run_id) == "failed"
    last = driver.history(run_id)[-1]
    assert isinstance(last, WorkflowFailed)
    assert last.error.type == "engine.PoisonCodeError" and "step 'exits_async'" in last.error.message
    with pytest.raises(PoisonCodeError, match="SystemExit"):
        driver.result(run_id)


def test_poison_errors_are_kflow_errors_and_never_retried() -> None:
    assert issubclass(ActivationBudgetExceededError, PoisonCodeError)
    assert issubclass(PoisonCodeError, KflowError)
    assert PoisonCodeError.retryable is False and ActivationBudgetExceededError.retryable is False


async def test_execute_step_lets_a_real_cancellation_of_the_worker_through() -> None:
    started = asyncio.Event()

    @step
    async def waits() -> None:
        started.set()
        await asyncio.Event().wait()

    command = ExecuteStep(
        run_id="r", workflow_name="wf", position=0, attempt=1, step_name="waits", args=CallArgs((), {}), scheduled_at=0
    )
    task = asyncio.create_task(execute_step(Registry([waits]), command, FakeClock(0)))
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()  # the worker shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
