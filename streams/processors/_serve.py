"""Running a long-lived Kafka service (orchestrator, timer processor, worker, materializer) through broker faults.

``supervise`` starts the service, watches it and rebuilds its Kafka clients when they stop making progress:

- a start that fails because Kafka is unreachable (or hangs: aiokafka's transactional ``start`` and a consumer's
  first join wait without limit) is retried with bounded back-off, one log line per attempt, no traceback;
- a running service is checked every few seconds: its loop ended with a Kafka error, its consumer loop has not
  come back from a poll for ``stall_seconds`` (stuck in a commit or a transaction that never completes), the
  consumer has not been a member of its group for ``stall_seconds`` (the coordinator never rejoined: aiokafka
  issue 1154), or a partition's position has not moved for ``stall_seconds`` while records wait behind it;
- then the service is stopped (every close bounded in time) and started again: fencing (transactional ids per
  partition) and committed offsets make a rebuild safe — what was not committed is redone, never lost.

Any other error of the service's loop is a bug: it is raised, and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Protocol, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from streams._errors import TransportError
from streams.processors._health import BOARD, ServiceHealth

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
"""Longest a start may take before it counts as failed (the broker may answer but not serve yet)."""
CHECK_EVERY_S = 2.0
"""How often a running service is checked."""
STALL_SECONDS = 20.0
"""How long a consumer may make no progress (see the module docstring) before its clients are rebuilt."""
BACKOFF_S = (0.5, 10.0)
"""First and longest pause between two attempts (doubling in between)."""

FAULTS: tuple[type[BaseException], ...] = (KafkaError, TransportError, OSError, TimeoutError)
"""What a broker fault looks like to a service: retried, never raised."""


_POSITION_ERRORS: tuple[type[BaseException], ...] = (*FAULTS, AssertionError, IllegalStateError)


class Service(Protocol):
    """What ``supervise`` runs: a service that can be started again after ``stop``."""

    name: str

    async def start(self) -> None:
        """Connect and start the service's loops."""

    async def stop(self) -> None:
        """Stop the loops and close the clients (also after a failed or partial start); bounded in time."""

    def loops(self) -> Collection[asyncio.Task[None]]:
        """The tasks of the running service (one ending means the service stopped)."""

    async def health(self) -> str | None:
        """A reason to rebuild the service's Kafka clients, or None while it makes progress."""


async def _readiness(service: Service) -> str | None:
    """The service's own reason not to be ready (its optional ``readiness()``), or None."""
    readiness = getattr(service, "readiness", None)
    return None if readiness is None else cast(str | None, await readiness())


async def supervise(
    service: Service,
    stopping: asyncio.Event,
    *,
    check_every: float = CHECK_EVERY_S,
    backoff: tuple[float, float] = BACKOFF_S,
    start_timeout: float = START_TIMEOUT_S,
) -> None:
    """Run ``service`` until ``stopping`` is set, rebuilding it after every broker fault (module docstring).

    Args:
        service: what to run.
        stopping: set to stop (the service is stopped, then this returns).
        check_every: seconds between two checks of the running service.
        backoff: first and longest pause between two attempts.
        start_timeout: longest a start may take.

    Raises:
        Exception: an error of the service that is not a broker fault (after the service was stopped).
    """
    pause = backoff[0]
    entry = BOARD.entry(service, service.name)
    while not stopping.is_set():
        started = time.monotonic()
        reason = await _run_once(service, stopping, check_every, start_timeout, entry)
        if reason is None:
            entry.phase, entry.reason = "stopped", "stopped"
            return
        entry.phase, entry.reason = "reconnecting", reason
        if time.monotonic() - started > 60:  # it ran for a while: the next fault starts the back-off afresh
            pause = backoff[0]
        log.warning("%s: %s; reconnecting in %.1f s", service.name, reason, pause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)
        pause = min(pause * 2, backoff[1])


async def _run_once(
    service: Service, stopping: asyncio.Event, check_every: float, start_timeout: float, entry: ServiceHealth
) -> str | None:
    """Start, watch and stop the service once; the reason to go again, or None when told to stop."""
    try:
        try:
            entry.phase = "starting"
            async with asyncio.timeout(start_timeout):
                await service.start()
        except FAULTS as exc:
            return f"cannot start ({_describe(exc)})"
        entry.phase, entry.checked_at, entry.reason = "running", time.monotonic(), "not checked yet"
        return await _watch(service, stopping, check_every, entry)
    finally:
        await service.stop()


async def _watch(service: Service, stopping: asyncio.Event, check_every: float, entry: ServiceHealth) -> str | None:
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            running = set(service.loops())
            await asyncio.wait({waiter, *running}, timeout=check_every, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                return None
            for task in running:
                if task.done():
                    error = None if task.cancelled() else task.exception()
                    if error is None:
                        return f"its loop {task.get_name()} ended"
                    if isinstance(error, FAULTS):
                        return f"its loop failed ({_describe(error)})"
                    raise error
            reason = await service.health()
            if reason is not None:
                return reason
            entry.reason, entry.checked_at = await _readiness(service), time.monotonic()
    finally:
        waiter.cancel()


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ProgressWatch:
    """Tells whether a consumer still makes progress (the checks of ``supervise``, for one consumer).

    The service calls ``polled`` each time a poll returns and ``processed`` after handling a partition's records;
    ``check`` compares that with the consumer's group membership and the partitions' end offsets.

    Args:
        stall_seconds: how long each kind of standstill is tolerated.
        clock: monotonic seconds (injected in tests).
    """

    def __init__(self, stall_seconds: float = STALL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._polled_at = clock()
        self._outside_since: float | None = None
        self._positions: dict[TopicPartition, tuple[int, float]] = {}  # next offset to handle, since when
        self.lag: dict[int, int] = {}  # partition -> records behind its (last stable) end, as of the last check

    def polled(self) -> None:
        """A poll returned (with records or not)."""
        self._polled_at = self._clock()

    def processed(self, tp: TopicPartition, next_offset: int) -> None:
        """The records of ``tp`` before ``next_offset`` are handled (``check`` also samples the position)."""
        known = self._positions.get(tp)
        if known is None or known[0] != next_offset:
            self._positions[tp] = (next_offset, self._clock())

    def reset(self) -> None:
        """Start over (after the consumer was rebuilt)."""
        self._polled_at, self._outside_since, self._positions, self.lag = self._clock(), None, {}, {}

    async def check(self, consumer: AIOKafkaConsumer, group: str) -> str | None:
        """A reason to rebuild ``consumer`` (a member of ``group``), or None."""
        now = self._clock()
        if now - self._polled_at > self.stall_seconds:
            return f"its consumer loop has not polled for {now - self._polled_at:.0f} s"
        if not _is_member(consumer):
            if self._outside_since is None:
                self._outside_since = now
            if now - self._outside_since > self.stall_seconds:
                return f"its consumer has not been a member of group {group} for {now - self._outside_since:.0f} s"
            return None
        self._outside_since = None
        return await self._check_positions(consumer, now)

    async def _check_positions(self, consumer: AIOKafkaConsumer, now: float) -> str | None:
        active = consumer.assignment() - consumer.paused()
        for tp in list(self._positions):
            if tp not in active:
                del self._positions[tp]
        for tp in active:
            # The consumer's own position: it steps over transaction markers, which the offset after the last
            # record handled does not (a partition written by transactions ends one past its last record).
            try:
                async with asyncio.timeout(5):
                    position = await consumer.position(tp)
                end = consumer.last_stable_offset(tp) or consumer.highwater(tp)  # known from fetches: no request
            except _POSITION_ERRORS:  # no answer yet, or revoked meanwhile
                continue
            self.processed(tp, position)
            if end is not None:
                self.lag[tp.partition] = max(0, end - position)
        self.lag = {p: n for p, n in self.lag.items() if any(tp.partition == p for tp in active)}
        stale = [tp for tp, (_, since) in self._positions.items() if now - since > self.stall_seconds]
        if not stale:
            return None
        try:
            async with asyncio.timeout(5):
                ends = await consumer.end_offsets(stale)
        except FAULTS:
            return None  # the broker is not answering: a rebuild cannot help yet
        behind = [tp for tp in stale if ends.get(tp, 0) > self._positions[tp][0]]
        if behind:
            tp = behind[0]
            return (
                f"partition {tp.topic}[{tp.partition}] has not moved past offset {self._positions[tp][0]} for "
                f"{now - self._positions[tp][1]:.0f} s while it ends at {ends[tp]}"
            )
        for tp in stale:  # caught up: nothing waits, standing still is right
            self._positions[tp] = (self._positions[tp][0], now)
        return None


def _is_member(consumer: AIOKafkaConsumer) -> bool:
    """Whether the consumer is in its group now (aiokafka 0.14 keeps the generation -1 while it is not)."""
    coordinator = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", 0)
    return not isinstance(generation, int) or generation >= 0
