"""A timer index rebuild cancelled mid-write (a revoke, a stop) lets its thread finish before the index is closed."""

from __future__ import annotations

import asyncio
import threading
import time

from schemas import RecordCodec
from streams import Topics
from streams.processors import RestoredTimers, TimerChangelog


class _SlowIndex:
    changelog_end = None

    def __init__(self) -> None:
        self.writing = threading.Event()
        self.done = False

    def count(self) -> int:
        return 0

    def replace(self, timers: object, end: int) -> None:
        self.writing.set()
        time.sleep(0.3)  # SQLite inserting rows in the worker thread
        self.done = True


async def test_cancelling_a_rebuild_waits_for_its_thread() -> None:
    changelog = TimerChangelog("127.0.0.1:9", Topics("p"), RecordCodec())

    async def read(partition: int, end_offset: int) -> RestoredTimers:
        return RestoredTimers([], end_offset, 0, 0)

    changelog.read = read  # type: ignore[method-assign]
    index = _SlowIndex()
    rebuild = asyncio.ensure_future(changelog.restore(0, index, 5, 0))  # type: ignore[arg-type]
    while not index.writing.is_set():
        await asyncio.sleep(0.01)
    rebuild.cancel()
    try:
        await rebuild
    except asyncio.CancelledError:
        pass
    assert rebuild.cancelled() and index.done  # the caller may close the index now: nothing writes to it any more
