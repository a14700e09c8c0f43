"""Schedules count how the runs they started ended, on the real stack: the orchestrator learns each run's end (its
``RunFinished`` comes back to the schedule's partition) and ``client.schedules`` / ``kflow schedules show|list``
report ``completed``, ``failed`` and ``cancelled``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from engine import ScheduleSpec
from engine.runtime import ScheduleState
from parity_support import Parity, kflow, new_tag, parity_services
from streams import Settings
from support import eventually

pytestmark = pytest.mark.integration

EVERY_SECOND = ScheduleSpec(interval="1s")


@pytest.fixture(scope="module")
async def app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parity]:
    async with parity_services(settings, "psched", tmp_path_factory.mktemp("timers"), materialize=False) as found:
        yield found


async def _settled(app: Parity, schedule_id: str, enough: int) -> ScheduleState:
    """Let the schedule start ``enough`` runs, pause it, cancel the runs still going, and wait until none of its
    runs is running."""

    async def fired() -> bool:
        state = await app.client.schedules.get(schedule_id)
        return state is not None and state.fires >= enough

    await eventually(fired, timeout=60, what=f"{enough} fires of {schedule_id}")
    paused = await app.client.schedules.pause(schedule_id)
    assert paused is not None
    for run_id in paused.running:  # a sleeper sleeps on: by hand, as a client would
        await app.client.cancel(run_id)

    async def idle() -> ScheduleState | None:
        state = await app.client.schedules.get(schedule_id)
        return state if state is not None and not state.running else None

    return await eventually(idle, timeout=60, what=f"the runs of {schedule_id} to end")


@pytest.mark.parametrize(
    ("workflow", "args", "overlap", "outcome"),
    [
        ("summed", (1,), "allow_all", "completed"),
        ("doomed", ("scheduled",), "allow_all", "failed"),
        ("sleeper", ("scheduled",), "cancel_other", "cancelled"),  # each fire cancels the run before it
    ],
)
async def test_a_schedule_counts_the_outcomes_of_its_runs(
    app: Parity, workflow: str, args: tuple[object, ...], overlap: str, outcome: str
) -> None:
    schedule_id = f"{outcome}-{new_tag()}"
    created = await app.client.schedules.create(schedule_id, workflow, EVERY_SECOND, *args, overlap=overlap)
    assert (created.completed, created.failed, created.cancelled) == (0, 0, 0)
    try:
        state = await _settled(app, schedule_id, enough=3)
        counts = {"completed": state.completed, "failed": state.failed, "cancelled": state.cancelled}
        assert counts[outcome] == state.fires >= 3
        assert sum(value or 0 for value in counts.values()) == state.fires  # every run that ended, once
        shown = await kflow(app.settings, "schedules", "show", schedule_id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert {key: json.loads(shown.stdout)[key] for key in counts} == counts
        listed = await kflow(app.settings, "schedules", "list", "--workflow", workflow)
        (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith(schedule_id)]
        assert row[-3:] == [str(counts["completed"]), str(counts["failed"]), str(counts["cancelled"])]
    finally:
        await app.client.schedules.delete(schedule_id)
