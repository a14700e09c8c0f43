"""Workflow code on the deterministic loop: gather, create_task, forbidden timers and I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from engine import WorkflowSandboxError, sleep, step, workflow
from engine.runtime import StepScheduled
from engine.testing import InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def double(x: int) -> int:
    return 2 * x


@step
async def name_of(x: int) -> str:
    return f"n{x}"


async def test_gather_runs_steps_in_parallel_with_positions_in_call_order(make_driver: Make) -> None:
    @workflow
    async def fan_out(n: int) -> list[int]:
        return list(await asyncio.gather(*(double(i) for i in range(n))))

    driver = make_driver(fan_out, double)
    run_id = driver.start(fan_out, 4)
    scheduled = [e for e in driver.history(run_id) if isinstance(e, StepScheduled)]
    assert [(e.position, e.args.args) for e in scheduled] == [(0, (0,)), (1, (1,)), (2, (2,)), (3, (3,))]
    assert all(e.seq == scheduled[0].seq + i for i, e in enumerate(scheduled))  # one activation
    await driver.run_until_idle()
    assert driver.result(run_id) == [0, 2, 4, 6]


async def test_create_task_and_mixed_kinds(make_driver: Make, clock: object) -> None:
    @workflow
    async def mixed() -> tuple[str, int]:
        background = asyncio.create_task(name_of(1))
        napping = asyncio.ensure_future(sleep("1s"))
        value = await double(21)
        await napping
        return await background, value

    driver = make_driver(mixed, double, name_of)
    run_id = driver.start(mixed)
    await driver.run_until_idle()
    clock.advance("1s")  # type: ignore[attr-defined]
    await driver.run_until_idle()
    assert driver.result(run_id) == ("n1", 42)


async def test_first_completed_is_decided_by_input_order(make_driver: Make, clock: object) -> None:
    @workflow
    async def race() -> str:
        slow = asyncio.ensure_future(sleep("1h"))
        fast = asyncio.ensure_future(name_of(7))
        done, _pending = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        winner = "step" if fast in done else "sleep"
        await slow
        return winner

    driver = make_driver(race, name_of)
    run_id = driver.start(race)
    await driver.run_until_idle()
    clock.advance("1h")  # type: ignore[attr-defined]
    await driver.run_until_idle()
    assert driver.result(run_id) == "step"


@pytest.mark.parametrize("forbidden", ["asyncio_sleep", "wait_for", "to_thread", "call_later"])
async def test_timers_and_threads_are_refused_with_a_hint(make_driver: Make, forbidden: str) -> None:
    @workflow
    async def naughty() -> None:
        if forbidden == "asyncio_sleep":
            await asyncio.sleep(1)
        elif forbidden == "wait_for":
            await asyncio.wait_for(asyncio.get_running_loop().create_future(), timeout=5)
        elif forbidden == "to_thread":
            await asyncio.to_thread(print, "hi")
        else:
            asyncio.get_running_loop().call_later(1, print)

    driver = make_driver(naughty, double)
    run_id = driver.start(naughty)
    await driver.run_until_idle()
    with pytest.raises(WorkflowSandboxError, match=r"use kflow's `sleep\(\)`|Use kflow's `sleep\(\)`"):
        driver.result(run_id)


async def test_asyncio_sleep_zero_and_workflow_time(make_driver: Make, clock: object) -> None:
    @workflow
    async def timed() -> list[float]:
        seen = [asyncio.get_running_loop().time()]
        await asyncio.sleep(0)
        await sleep("2s")
        seen.append(asyncio.get_running_loop().time())
        return seen

    driver = make_driver(timed)
    run_id = driver.start(timed)
    clock.advance("2s")  # type: ignore[attr-defined]
    await driver.run_until_idle()
    first, second = driver.result(run_id)  # type: ignore[misc]
    assert second - first == 2.0
