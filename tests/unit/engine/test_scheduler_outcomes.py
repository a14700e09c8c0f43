"""A schedule counts how the runs it started ended: completed, failed, cancelled (a chain once) — no Kafka."""

from __future__ import annotations

import dataclasses
import json

from engine import ScheduleSpec
from engine.runtime import CallArgs, RunFinished, ScheduleCommand, ScheduleState, TimerFired, decide_schedule

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MIN
EVERY_MINUTE = json.dumps(ScheduleSpec(interval="1m").to_wire())


def create(overlap: str = "allow_all") -> ScheduleState:
    cmd = ScheduleCommand(
        schedule_id="s",
        action="create",
        request_id="c",
        workflow_name="wf",
        args=CallArgs((), {}),
        spec=EVERY_MINUTE,
        overlap=overlap,
        requested_at=0,
    )
    state = decide_schedule(None, cmd, T0 + 5).state
    assert state is not None
    return state


def fire(state: ScheduleState) -> ScheduleState:
    assert state.timer_id is not None and state.next_fire_at is not None
    fired = TimerFired(
        run_id="schedule:s",
        timer_id=state.timer_id,
        position=0,
        kind="schedule",
        fire_at=state.next_fire_at,
        fired_at=state.next_fire_at,
    )
    decided = decide_schedule(state, fired, state.next_fire_at + 3).state
    assert decided is not None
    return decided


def finish(state: ScheduleState, run_id: str, status: str, next_run_id: str | None = None) -> ScheduleState:
    done = RunFinished(
        run_id=run_id,
        workflow_name="wf",
        status=status,
        next_run_id=next_run_id,
        parent_run_id="schedule:s",
        started_at=1,
        finished_at=2,
    )
    decided = decide_schedule(state, done, T0 + 100 * MIN).state
    assert decided is not None
    return decided


def counts(state: ScheduleState) -> tuple[int | None, int | None, int | None]:
    return state.completed, state.failed, state.cancelled


def test_a_new_schedule_counts_from_zero_and_each_outcome_adds_to_its_counter() -> None:
    state = create()
    assert counts(state) == (0, 0, 0)
    for _ in range(4):
        state = fire(state)
    first, second, third, fourth = state.running
    state = finish(state, first, "completed")
    state = finish(state, second, "failed")
    state = finish(state, third, "cancelled")
    state = finish(state, fourth, "completed")
    assert counts(state) == (2, 1, 1) and state.running == () and state.fires == 4


def test_a_continue_as_new_chain_counts_once_by_its_last_run() -> None:
    state = fire(create())
    state = finish(state, state.running[0], "continued_as_new", next_run_id="next")
    assert counts(state) == (0, 0, 0) and state.running == ("next",)
    state = finish(state, "next", "failed")
    assert counts(state) == (0, 1, 0)


def test_a_run_the_schedule_is_not_running_counts_nothing() -> None:
    state = fire(create())
    decision = decide_schedule(
        state,
        RunFinished(
            run_id="stranger",
            workflow_name="wf",
            status="completed",
            parent_run_id="schedule:s",
            started_at=1,
            finished_at=2,
        ),
        T0 + 100 * MIN,
    )
    assert not decision.changed and decision.state is not None and counts(decision.state) == (0, 0, 0)
    once = finish(state, state.running[0], "completed")
    assert counts(finish(once, state.running[0], "completed")) == (1, 0, 0)  # a duplicate completion: once


def test_a_state_written_before_counting_starts_counting_at_its_next_finished_run() -> None:
    state = fire(create())
    legacy = dataclasses.replace(state, completed=None, failed=None, cancelled=None)  # as an older release wrote it
    assert counts(finish(legacy, legacy.running[0], "cancelled")) == (None, None, 1)
