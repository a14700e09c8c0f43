"""Workflows whose recorded histories the ops CLI tests query and replay (``-A ops_workflows``)."""

from __future__ import annotations

from engine import continue_as_new, sleep, step, workflow


@step
async def reserve(item: str) -> str:
    return f"reserved {item}"


@step
async def charge(amount: float) -> float:
    return amount


@step
async def refund(amount: float) -> float:
    return -amount


@step(max_retries=0)
async def explode(item: str) -> None:
    raise ValueError(f"{item} is out of stock")


@workflow
async def order(item: str, amount: float) -> dict[str, object]:
    """Reserve (position 0), sleep (position 1), charge (position 2)."""
    reserved = await reserve(item)
    await sleep("1m")
    return {"reserved": reserved, "charged": await charge(amount)}


@workflow
async def doomed(item: str) -> None:
    """Fails: its only step raises."""
    await explode(item)


@workflow
async def countdown(n: int) -> str:
    """Continues as new until ``n`` reaches 0: a chain of ``n + 1`` runs."""
    if n > 0:
        continue_as_new(n - 1)
    return "liftoff"
