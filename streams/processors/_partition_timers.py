"""The timers of one assigned ``.timers`` partition: its due-time index, its in-memory head and the task
that fires them (the timer processor holds one per partition it owns)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiokafka.errors import KafkaError

from engine.runtime import Clock
from streams.processors._timer_changelog import ChangelogWriter, RestoredTimers, TimerChangelog
from streams.processors._timer_index import ArmedTimer, TimerHead, TimerIndex, TimerKey

log = logging.getLogger(__name__)

FIRE_CHUNK = 500
"""Most timers produced before their deletes are committed: bounds memory and re-fires after a crash."""

RETRY_SECONDS = 1.0
"""Back-off before a partition retries after firing failed (Kafka refused the records, SQLite failed)."""

Fire = Callable[[Sequence[ArmedTimer]], Awaitable[None]]
"""Produces ``TimerFired`` for the given timers and returns once Kafka acknowledged them."""


class PartitionTimers:
    """The timers of one assigned ``.timers`` partition: its index, its head and its scheduler task.

    Every change goes to the changelog first and to the index once the changelog acknowledged it.
    """

    def __init__(
        self, partition: int, index: TimerIndex, head_size: int, clock: Clock, fire: Fire, changelog: ChangelogWriter
    ) -> None:
        self.partition = partition
        self.index = index
        self.head = TimerHead(head_size)
        self._clock = clock
        self._fire = fire
        self._changelog = changelog
        # Invariant: held from a changelog write until the SQLite transaction mirroring it commits, so the
        # batch path and the scheduler never interleave there: a tombstone is written only for a timer the
        # index still holds as fired, and the stored end offset is always that of the index's last write.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load the head from the index and start firing (timers persisted earlier fire without input)."""
        self.head.load(self.index.earliest(self.head.capacity))
        self._task = asyncio.create_task(self._schedule(), name=f"kflow-timers-{self.partition}")

    async def apply(self, arms: list[tuple[ArmedTimer, bytes]], removals: list[TimerKey]) -> None:
        """Persist a batch's arms (timer, its ``StartTimer`` bytes) and removals, then mirror them in the head.

        The changelog gets the arms and a tombstone for each removal the index holds; once acknowledged, one
        SQLite transaction applies them and stores the changelog's new end offset.
        """
        async with self._lock:
            end = await self._changelog.write(
                self.partition, [(t.key, value, t.trace) for t, value in arms], self.index.present(removals)
            )
            self.index.apply([t for t, _ in arms], removals, end)
            for key in removals:
                self.head.discard(key)
            woken = [self.head.offer(timer) for timer, _ in arms]
        if any(woken):
            self._wake.set()  # an earlier timer than the one the scheduler sleeps for

    async def close(self) -> None:
        """Stop firing and close the index (a fire in flight is abandoned: its timer stays armed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.index.close()

    async def _schedule(self) -> None:
        reload = False
        while True:
            try:
                if reload:
                    self.head.load(self.index.earliest(self.head.capacity))
                    reload = False
                await self._step()
            except Exception as exc:
                # Whatever failed (Kafka refusing the fires, a SQLite error), every timer not yet deleted
                # is still in the index: back off, rebuild the head from it and go on.
                if isinstance(exc, (KafkaError, OSError, TimeoutError)):  # a broker fault: one line, no traceback
                    log.warning("partition %d: firing timers failed (%r); retrying", self.partition, exc)
                else:
                    log.exception("partition %d: firing timers failed; retrying", self.partition)
                reload = True
                await asyncio.sleep(RETRY_SECONDS)

    async def _step(self) -> None:
        """Fire what is due, else refill an exhausted head, else sleep until the next due time."""
        now = self._clock.now_ms()
        due = self.head.take_due(now, FIRE_CHUNK)
        if due:
            await self._fire(due)
            async with self._lock:
                # Re-armed (another due time) or cancelled while TimerFired was in flight: that batch already
                # wrote its record, a tombstone now would wrongly end the timer in the changelog.
                fired = self.index.holding(due)
                end = await self._changelog.write(self.partition, [], [t.key for t in fired])
                self.index.remove_fired(fired, end)
        elif self.head.needs_refill:
            self.head.load(self.index.earliest(self.head.capacity))
        else:
            await self._sleep_until(self.head.next_fire_at, now)

    async def _sleep_until(self, fire_at: int | None, now: int) -> None:
        """Wait until ``fire_at`` (forever when None) or until an earlier timer arrives."""
        # No await between computing `fire_at` and clearing: an arm cannot slip in unnoticed.
        self._wake.clear()
        delay = None if fire_at is None else max(0, fire_at - now) / 1000
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()


async def open_index(
    path: Path, changelog: TimerChangelog, number: int, end: int, clock: Clock
) -> tuple[TimerIndex, RestoredTimers | None, float]:
    """The index of ``.timers`` partition ``number`` at ``path``, rebuilt from the changelog unless it reflects the
    changelog's ``end``; with what was restored (None: nothing to rebuild) and the seconds it took."""
    index = TimerIndex(path)
    started, local = time.perf_counter(), index.changelog_end
    try:
        restored = await changelog.restore(number, index, end, clock.now_ms())
    except BaseException:
        index.close()
        raise
    elapsed = time.perf_counter() - started
    if restored is not None:
        log.info(
            "timer partition %d: index rebuilt from %s (local index at %s, changelog end %d): %d "
            "timer(s) restored from %d record(s) in %.3fs%s",
            number,
            changelog.topic,
            "none" if local is None else local,
            restored.end_offset,
            len(restored.timers),
            restored.records,
            elapsed,
            f", {restored.skipped} unusable record(s) skipped" if restored.skipped else "",
        )
    return index, restored, elapsed
