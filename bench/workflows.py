"""Workflows the benchmarks run (``-A bench.workflows``)."""

from __future__ import annotations

from engine import hook, sleep, step, workflow


@step
async def noop(i: int) -> int:
    return i


@workflow
async def three_steps(i: int) -> int:
    a = await noop(i)
    b = await noop(a)
    return await noop(b)


@workflow
async def one_step(i: int) -> int:
    return await noop(i)


@workflow
async def many_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@workflow
async def sleep_one_second() -> str:
    await sleep("1s")
    return "ok"


@workflow
async def waits_for_hook(i: int) -> object:
    return await hook("go")


@workflow
async def sleeper(seconds: float) -> str:
    await sleep(seconds)  # no step: a run is one timer (bench.sleepers)
    return "ok"
