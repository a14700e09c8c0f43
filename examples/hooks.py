"""Hooks: a workflow waits for an external payload (``python -m examples.hooks``).

The token is ``"<run_id>:approval"``; deliver it with ``client.resume_hook`` or
``kflow hooks resume "<run_id>:approval" '{"ok": true}'``. A hook that times out raises HookExpiredError.
"""

from __future__ import annotations

import asyncio

from engine import HookExpiredError, hook, step, workflow
from streams import Client
from streams.dev import Say


@step
async def ship(order_id: str) -> str:
    return f"{order_id} shipped"


@workflow
async def approval(order_id: str, wait: str = "1h") -> str:
    """Ship only once a person approved; give up when nobody answers in time."""
    try:
        decision = await hook("approval", timeout=wait)
    except HookExpiredError:
        return f"{order_id}: nobody approved in {wait}"
    if not decision.get("ok"):
        return f"{order_id}: rejected"
    return await ship(order_id)


async def _hook_created(client: Client, run_id: str) -> None:
    while not any(type(e).__name__ == "HookCreated" for e in await client.get_events(run_id)):
        await asyncio.sleep(0.05)


async def scenario(client: Client, say: Say) -> None:
    """Approve one order, let another one's hook expire."""
    approved = await client.start("approval", "o-1")
    await asyncio.wait_for(_hook_created(client, approved), 30)
    await client.resume_hook(f"{approved}:approval", {"ok": True})
    say(f"approved: {await client.result(approved, timeout=30)}")
    expiring = await client.start("approval", "o-2", "500ms")
    say(f"expired: {await client.result(expiring, timeout=30)}")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.hooks", scenario)
