"""Workflows the hook-delivery tests run (``tests/integration/test_hooks.py``): only hooks, no steps or timers,
so which payload is delivered and which is queued depends on inbox order alone."""

from __future__ import annotations

from pydantic import BaseModel

from engine import define_hook, hook, workflow


class Approval(BaseModel):
    ok: bool
    by: str


approval_hook = define_hook("approval", Approval)


@workflow
async def approve(order_id: str) -> dict[str, object]:
    decision = await hook("approval", timeout="60s")
    return {"order_id": order_id, "approved": decision["ok"]}  # type: ignore[index]


@workflow
async def approve_when_ready() -> list[object]:
    """Waits on ``ready`` first, so payloads for ``approval`` sent meanwhile are queued; takes two."""
    await hook("ready", timeout="60s")
    return [await hook("approval", timeout="60s") for _ in range(2)]


@workflow
async def approve_typed() -> str:
    decision = await approval_hook(timeout="60s")
    return f"{decision.ok} by {decision.by}"


@workflow
async def instant() -> str:
    return "done"
