"""The engine's unwinding signal is a BaseException: `except Exception` in workflows cannot eat it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import KflowError, Registry, RunClosedError, continue_as_new, sleep, step, workflow
from engine.runtime import CallArgs, ContinueAsNewSignal, Run, StartWorkflow, Unwind
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


def test_signals_are_base_exceptions_not_exceptions() -> None:
    assert not issubclass(Unwind, Exception) and issubclass(Unwind, BaseException)
    assert not issubclass(ContinueAsNewSignal, Exception)


@step
async def slow() -> str:
    return "slow"


def start(registry: Registry, name: str) -> Run:
    run, _ = Run.start(
        registry, StartWorkflow(run_id="s1", workflow_name=name, args=CallArgs((), {}), requested_at=0), 1_000
    )
    return run


def test_evicting_a_suspended_run_bypasses_except_exception() -> None:
    seen: list[str] = []

    @workflow
    async def greedy() -> str:
        try:
            await slow()
        except Exception:
            seen.append("except Exception ran")
            return "swallowed"
        finally:
            seen.append("finally ran")
        return "normal"

    run = start(Registry([greedy, slow]), "greedy")
    assert run.status == "running"
    run.close()
    assert seen == ["finally ran"]  # cleanup runs, the except-branch never sees the signal
    run.close()  # idempotent
    with pytest.raises(RunClosedError):
        run.handle(StartWorkflow(run_id="s1", workflow_name="greedy", args=CallArgs((), {}), requested_at=0), 2_000)


def test_kflow_calls_in_finally_during_eviction_are_refused() -> None:
    calls: list[str] = []

    @step
    async def cleanup() -> None:
        calls.append("cleanup executed")

    @workflow
    async def tidy() -> None:
        try:
            await sleep("1h")
        finally:
            await cleanup()  # would issue a command: refused while unwinding

    run = start(Registry([tidy, cleanup]), "tidy")
    run.close()
    assert calls == []


async def test_suspension_through_except_exception_in_every_replay_mode(make_driver: Make, clock: FakeClock) -> None:
    caught: list[BaseException] = []

    @workflow
    async def stubborn() -> list[str]:
        results = []
        for _ in range(3):
            try:
                results.append(await slow())
                await sleep("1s")
            except Exception as exc:
                caught.append(exc)
        return results

    driver = make_driver(stubborn, slow)
    run_id = driver.start(stubborn)
    for _ in range(3):
        await driver.run_until_idle()
        clock.advance("1s")
    await driver.run_until_idle()
    assert driver.result(run_id) == ["slow", "slow", "slow"]
    assert caught == []


async def test_continue_as_new_cannot_be_swallowed(make_driver: Make) -> None:
    @workflow
    async def looping(n: int) -> int:
        if n >= 2:
            return n
        try:
            continue_as_new(n + 1)
        except Exception:
            return -1
        return -2

    driver = make_driver(looping)
    run_id = driver.start(looping, 0)
    await driver.run_until_idle()
    assert driver.status(run_id) == "continued_as_new"
    assert driver.result(run_id) == 2


def test_api_outside_a_workflow_is_a_clear_error() -> None:
    with pytest.raises(KflowError, match="inside a running workflow"):
        continue_as_new(1)
