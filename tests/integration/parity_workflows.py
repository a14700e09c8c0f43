"""Workflows of the pyworkflow-parity tests (``test_parity_client.py``, ``test_parity_cli.py``,
``test_parity_schedules.py``; importable as ``-A parity_workflows``)."""

from __future__ import annotations

import asyncio

from engine import (
    HookExpiredError,
    continue_as_new,
    hook,
    shield,
    sleep,
    start_child_workflow,
    step,
    workflow,
)


@step
async def add(a: int, b: int) -> int:
    return a + b


@step(max_retries=0)
async def explode(tag: str) -> None:
    raise ValueError(f"{tag} exploded")


@workflow
async def summed(a: int, b: int = 0, label: str = "sum") -> dict[str, object]:
    """One step; its keyword arguments show in listings."""
    return {"label": label, "total": await add(a, b)}


@workflow
async def doomed(tag: str) -> None:
    """Fails: its only step raises."""
    await explode(tag)


@workflow
async def family(n: int) -> list[object]:
    """``n`` children, started together."""
    return list(await asyncio.gather(*(start_child_workflow(summed, i, 1) for i in range(n))))


@workflow
async def loop(n: int) -> str:
    """A chain of ``n + 1`` runs by continue-as-new."""
    if n > 0:
        continue_as_new(n - 1)
    return "done"


@workflow
async def sleeper(tag: str) -> str:
    """Sleeps an hour: cancellable at its sleep."""
    await sleep("1h")
    return tag


@workflow
async def stubborn(tag: str) -> str:
    """Sleeps an hour inside ``shield()``: a cancel waits for the block to end."""
    async with shield():
        await sleep("1h")
    return tag


@workflow
async def gate(tag: str) -> str:
    """Hooks in every state: ``approval`` received, ``quick`` expired, ``early`` queued, ``final`` pending."""
    await hook("approval", timeout="1h")
    try:
        await hook("quick", timeout="1s")
    except HookExpiredError:
        pass
    await hook("final", timeout="1h")
    await hook("early", timeout="1h")
    return tag
