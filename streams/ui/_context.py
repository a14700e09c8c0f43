"""What every page and API handler of the UI reads and does, through the client (``streams.client.Client``) and the
ops functions (``streams.ops``) the CLI uses: one ``UiContext`` per server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from engine import RunStatus
from engine.runtime import HistoryEvent, ScheduleState, SystemClock
from streams._settings import Settings
from streams._topics import Topics
from streams.client import Client, RunInfo, RunList, run_info
from streams.ops import (
    DeadLetterView,
    DlqFilter,
    HookView,
    OpsError,
    find_dead_letter,
    hooks_of,
    parse_address,
    read_dead_letters,
    topic_partitions,
)
from streams.ui._params import BadRequest, NotFound, RunFilters
from streams.ui._stats import StatsCollector

SCHEDULES_FOR_S: Final = 3.0
"""How long a read of every schedule (the whole ``.state`` topic, as ``kflow schedules list``) is reused."""
DLQ_LOOK_BACK_MS: Final = 7 * 86_400_000
"""How far back the dead letters page reads without a ``since``, and at most (an older ``since`` is clamped)."""
DLQ_MAX_RECORDS: Final = 10_000
"""Most dlq records one request reads (shared by the partitions: the newest of the window); also how far after a
dead letter its redrive note is looked for."""


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """What a dead letter listing shows: the letters (oldest first), how many older ones matched too, the ``since``
    used (epoch ms, clamped to ``DLQ_LOOK_BACK_MS``), and whether the read stopped at ``DLQ_MAX_RECORDS``."""

    letters: list[DeadLetterView]
    older: int
    since: int
    capped: bool


@dataclass(frozen=True, slots=True)
class RunPageData:
    """A run as its page shows it: its view from the history (None: no history), the history, its hooks."""

    run_id: str
    info: RunInfo | None
    events: list[HistoryEvent]
    hooks: list[HookView]


@dataclass(slots=True)
class UiContext:
    """The UI's client, settings and dashboard collector; a short cache of the schedules' states."""

    settings: Settings
    client: Client
    stats: StatsCollector
    clock: SystemClock = field(default_factory=SystemClock)
    _schedules: tuple[float, list[ScheduleState]] | None = None
    _reading: tuple[int, asyncio.Future[list[ScheduleState]]] | None = None  # the read in flight, its generation
    _generation: int = 0  # ``forget_schedules`` moves it on: a read begun before a change is not reused

    async def list_runs(self, filters: RunFilters) -> RunList:
        """One page of runs (``Client.list_runs``; a ``ValueError`` of a bad token is a ``BadRequest``)."""
        try:
            return await self.client.list_runs(
                status=filters.status,
                workflow=filters.workflow,
                since=filters.since_ms,
                until=filters.until_ms,
                run_id_prefix=filters.prefix,
                limit=filters.limit,
                page_token=filters.page,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    async def run(self, run_id: str) -> RunPageData:
        """The run's view, history and hooks, always current (``Client.get_events``)."""
        events = await self.client.get_events(run_id)
        info = run_info(run_id, events)  # what get_run derives, from this very read
        status = str(info.status) if info is not None else RunStatus.RUNNING.value
        return RunPageData(run_id, info, events, hooks_of(run_id, events, status))

    async def require_run(self, run_id: str) -> RunPageData:
        """``run``, or ``NotFound`` when the run has no history."""
        found = await self.run(run_id)
        if found.info is None:
            raise NotFound(f"run {run_id} has no history (not started yet, dead-lettered, or another topic prefix)")
        return found

    async def schedules(self) -> list[ScheduleState]:
        """Every schedule's state, read again at most every ``SCHEDULES_FOR_S``; concurrent requests share one read."""
        loop = asyncio.get_running_loop()
        if self._schedules is not None and loop.time() - self._schedules[0] <= SCHEDULES_FOR_S:
            return self._schedules[1]
        if self._reading is None or self._reading[0] != self._generation:
            self._reading = (self._generation, asyncio.ensure_future(self._read_schedules(self._generation)))
        return await asyncio.shield(self._reading[1])  # a request gone away does not cancel the others' read

    async def _read_schedules(self, generation: int) -> list[ScheduleState]:
        try:
            states = await self.client.schedules.list()
            if generation == self._generation:
                self._schedules = (asyncio.get_running_loop().time(), states)
            return states
        finally:
            if self._reading is not None and self._reading[0] == generation:
                self._reading = None

    async def schedule(self, schedule_id: str) -> ScheduleState:
        """One schedule's state (its partition of ``.state`` read to the end); ``NotFound`` when there is none."""
        try:
            state = await self.client.schedules.get(schedule_id)
        except ValueError as exc:  # not a schedule id
            raise BadRequest(str(exc)) from None
        if state is None:
            raise NotFound(f"no schedule {schedule_id!r}")
        return state

    def forget_schedules(self) -> None:
        """Read the schedules again at the next request (after a change)."""
        self._schedules = None
        self._generation += 1

    async def dead_letters(self, since_ms: int | None, filters: list[DlqFilter], limit: int) -> DeadLetters:
        """The newest ``limit`` dead letters failed since ``since_ms`` (at most ``DLQ_LOOK_BACK_MS`` back, the
        default) that match every filter, oldest first; at most ``DLQ_MAX_RECORDS`` records read."""
        oldest = self.clock.now_ms() - DLQ_LOOK_BACK_MS
        since = oldest if since_ms is None else max(since_ms, oldest)
        contents = await read_dead_letters(self.settings, since_ms=since, max_records=DLQ_MAX_RECORDS)
        matching = [letter for letter in contents.letters if all(f.matches(letter) for f in filters)]
        return DeadLetters(matching[-limit:], max(0, len(matching) - limit), since, contents.capped)

    async def dead_letter(self, address: str) -> DeadLetterView:
        """The dead letter at ``PARTITION:OFFSET``; ``BadRequest`` for a malformed address."""
        partitions = await topic_partitions(self.settings.kafka_target(), Topics(self.settings.topic_prefix).dlq)
        try:
            where = parse_address(address, partitions)
        except OpsError as exc:
            raise BadRequest(str(exc)) from None
        try:
            return await find_dead_letter(self.settings, where, DLQ_MAX_RECORDS)
        except OpsError as exc:  # nothing there, or a redrive note
            raise NotFound(str(exc)) from None


CONTEXT: Final = web.AppKey("kflow_ui_context", UiContext)
"""Where the application keeps its ``UiContext``."""


def context_of(request: web.Request) -> UiContext:
    """The ``UiContext`` of the application serving ``request``."""
    return request.app[CONTEXT]
