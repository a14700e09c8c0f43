"""What the schedule tests share: fresh schedule ids, waiting on a schedule's state, the spans of its runs."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable

from engine import ScheduleSpec
from engine.runtime import ScheduleState
from streams import Client
from support import eventually

EVERY_SECOND = ScheduleSpec(interval="1s")


def new_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def now_ms() -> int:
    return int(time.time() * 1000)


async def state_until(
    client: Client,
    schedule_id: str,
    check: Callable[[ScheduleState], bool],
    what: str,
    timeout: float = 20,
    seen: list[ScheduleState] | None = None,
) -> ScheduleState:
    """Poll the schedule's state until ``check`` holds (every state read is appended to ``seen``)."""

    async def matching() -> ScheduleState:
        state = await client.schedules.get(schedule_id)
        if state is None:
            raise LookupError(f"schedule {schedule_id} is gone")
        if seen is not None:
            seen.append(state)
        assert check(state), state
        return state

    return await eventually(matching, timeout=timeout, interval=0.1, what=what)


async def spans(client: Client, run_ids: tuple[str, ...]) -> list[tuple[int, int | None, str]]:
    """(start, end or None while running, status) of each run, in start order."""
    found = []
    for run_id in run_ids:
        info = await client.get_run(run_id)
        assert info is not None, f"run {run_id} has no history"
        found.append((info.started_at, info.finished_at, info.status))
    return sorted(found, key=lambda span: span[0])


def never_concurrent(found: list[tuple[int, int | None, str]]) -> bool:
    return all(end is not None and end <= next_start for (_, end, _), (next_start, _, _) in itertools.pairwise(found))
