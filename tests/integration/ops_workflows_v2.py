"""``ops_workflows`` after a code change: ``order`` refunds where it slept (a different command at
position 1), so replaying histories recorded with the first version must report a divergence."""

from __future__ import annotations

from engine import step, workflow


@step
async def reserve(item: str) -> str:
    return f"reserved {item}"


@step
async def refund(amount: float) -> float:
    return -amount


@workflow
async def order(item: str, amount: float) -> dict[str, object]:
    """Reserve (position 0), refund (position 1): position 1 was a sleep."""
    reserved = await reserve(item)
    return {"reserved": reserved, "charged": await refund(amount)}
