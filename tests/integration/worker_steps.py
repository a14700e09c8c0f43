"""Steps the step-worker integration tests run (collected with ``Registry.from_module``)."""

from __future__ import annotations

import asyncio
import os

from engine import FatalError, step


@step
async def add(a: int, b: int) -> int:
    """Succeeds with a JSON value."""
    return a + b


@step
async def explode(message: str) -> None:
    """Fails with a ValueError (retryable)."""
    raise ValueError(message)


@step
async def refuse(message: str) -> None:
    """Fails with a FatalError (not retryable)."""
    raise FatalError(message)


@step
async def dawdle(seconds: float) -> str:
    """Sleeps; the tests give it a timeout shorter than the sleep."""
    await asyncio.sleep(seconds)
    return "woke"


@step
async def make_opaque() -> dict[str, object]:
    """Returns a value no JSON payload codec carries (a set would do now: json+types carries it)."""
    return {"items": [1, 2, object()]}


@step
async def mark_and_sleep(path: str, seconds: float) -> str:
    """Appends one line to ``path`` (a start marker, with the pid) and then sleeps."""
    with open(path, "a", encoding="utf-8") as marker:
        marker.write(f"start {os.getpid()}\n")
    await asyncio.sleep(seconds)
    return "done"


RUNNING = {"now": 0, "peak": 0}
"""How many ``track`` steps run at this moment, and the most seen at once (in-process workers only)."""


@step
async def track(seconds: float) -> int:
    """Counts itself as running while it sleeps; returns the peak seen so far."""
    RUNNING["now"] += 1
    RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        RUNNING["now"] -= 1
    return RUNNING["peak"]
