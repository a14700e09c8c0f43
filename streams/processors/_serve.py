"""Running a background service (orchestrator, timer processor, worker, materializer) until told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection


async def serve(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    loops: Callable[[], Collection[asyncio.Task[None]]],
    stopping: asyncio.Event,
) -> None:
    """``start()``, wait until ``stopping`` is set or one of the service's ``loops()`` ends, ``stop()``.

    Raises:
        Exception: the error a loop crashed with (after the service was stopped).
    """
    await start()
    running = list(loops())
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({waiter, *running}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        await stop()
    for task in running:
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            raise error
