"""Workflows of the memory-budget tests (test_budgets.py; ``bench/budget_workflows.py`` is the bench's copy)."""

from __future__ import annotations

from engine import hook, sleep, step, workflow


@step
async def blob(size: int, i: int) -> str:
    return f"{i}:" + "x" * size  # a large result: each one makes the run's history that much longer


@workflow
async def heavy(steps: int, size: int) -> int:
    """A run holding a large history: ``steps`` results of ``size`` bytes, then it waits (running) on a hook."""
    for i in range(steps):
        await blob(size, i)
    await hook("done")
    return steps


@workflow
async def late_hooks(nap: str, names: list[str]) -> list[object]:
    """Payloads for its hooks arrive early, while it sleeps: kept (within its budget) until it reaches them."""
    await sleep(nap)
    return [await hook(name) for name in names]


@workflow
async def held(payload: object) -> str:
    """Started by a schedule; runs until its hook ``release`` is resumed (so fires overlap)."""
    await hook("release")
    return "released"
