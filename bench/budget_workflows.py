"""Workflows of the memory-budget load (``python -m bench.budgets``, ``tests/integration/test_budgets.py``)."""

from __future__ import annotations

from engine import hook, sleep, step, workflow


@step
async def blob(size: int, i: int) -> str:
    return f"{i}:" + "x" * size  # a large result: each one makes the run's history that much longer


@workflow
async def heavy(steps: int, size: int) -> int:
    """A run holding a large history: ``steps`` results of ``size`` bytes, then it waits (running) on a hook."""
    for i in range(steps):
        await blob(size, i)  # the result is not kept: only the history grows
    await hook("done")
    return steps


@workflow
async def late_hooks(names: list[str]) -> int:
    """Payloads for its hooks arrive early, while it sleeps: kept (within its budget) until it reaches them."""
    await sleep("1h")
    taken = 0
    for name in names:
        await hook(name)
        taken += 1
    return taken


@workflow
async def held(payload: object) -> str:
    """Started by a schedule; runs until its hook ``release`` is resumed (so fires overlap)."""
    await hook("release")
    return "released"
