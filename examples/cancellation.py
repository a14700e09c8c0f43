"""Cancellation: ``client.cancel`` raises CancellationError at the next await; cleanup in ``finally``
runs, and steps inside ``shield()`` complete (``python -m examples.cancellation``)."""

from __future__ import annotations

import asyncio

from engine import CancellationError, shield, sleep, step, workflow
from streams import Client
from streams.dev import Say, history_lines


@step
async def release(resource: str) -> str:
    return f"{resource} released"


@workflow
async def hold(resource: str) -> str:
    """Hold a resource for a day; always release it."""
    try:
        await sleep("1d")
        return "held to the end"
    finally:
        async with shield():
            await release(resource)


async def scenario(client: Client, say: Say) -> None:
    run_id = await client.start("hold", "gpu-7")
    while not any(type(e).__name__ == "TimerScheduled" for e in await client.get_events(run_id)):
        await asyncio.sleep(0.05)
    await client.cancel(run_id, reason="job no longer needed")
    try:
        await client.result(run_id, timeout=30)
    except CancellationError as exc:
        say(f"cancelled: {exc}")
    for line in history_lines(await client.get_events(run_id))[-4:]:
        say(line)


if __name__ == "__main__":
    from examples._runner import main

    main("examples.cancellation", scenario)
