"""A schedule's bookkeeping stays bounded: at most 1000 buffered fires, and a state that always fits the record
limit (trimmed, a fire skipped, or a command refused with the reason; never a schedule that silently stops)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from engine import ScheduleSpec
from engine.runtime import (
    CallArgs,
    RunFinished,
    ScheduleCommand,
    ScheduleDecision,
    ScheduleState,
    StartTimer,
    StartWorkflow,
    TimerFired,
    decide_schedule,
    schedule_key,
)
from schemas import RecordCodec

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MIN
EVERY_MINUTE = json.dumps(ScheduleSpec(interval="1m").to_wire())
RECORDS = RecordCodec()


def size_of(state: ScheduleState) -> int:
    return len(RECORDS.encode(state))


def command(action: str, request: str, **fields: object) -> ScheduleCommand:
    return ScheduleCommand(schedule_id="s", action=action, request_id=request, requested_at=0, **fields)  # type: ignore[arg-type]


def create(overlap: str, args: CallArgs | None = None) -> ScheduleState:
    args = args or CallArgs((), {})
    made = command("create", "c", workflow_name="wf", args=args, spec=EVERY_MINUTE, overlap=overlap)
    decision = decide_schedule(None, made, T0 + 5)
    assert decision.state is not None
    return decision.state


def fire(state: ScheduleState, max_bytes: int) -> ScheduleDecision:
    assert state.timer_id is not None and state.next_fire_at is not None
    fired = TimerFired(
        run_id=schedule_key("s"),
        timer_id=state.timer_id,
        position=0,
        kind="schedule",
        fire_at=state.next_fire_at,
        fired_at=state.next_fire_at,
    )
    return decide_schedule(state, fired, state.next_fire_at + 3, size_of=size_of, max_bytes=max_bytes)


def finished(run_id: str) -> RunFinished:
    return RunFinished(
        run_id=run_id, workflow_name="wf", status="completed", parent_run_id="schedule:s", started_at=1, finished_at=2
    )


def starts(decision: ScheduleDecision) -> list[str]:
    return [c.run_id for c in decision.commands if isinstance(c, StartWorkflow)]


def test_at_most_1000_fires_wait_and_later_ones_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    state = decide_schedule(create("buffer_all"), command("trigger", "t1"), T0 + 10).state
    assert state is not None and len(state.running) == 1
    backfill = command("backfill", "b1", range_start=T0 - 1000 * MIN, range_end=T0)
    state = decide_schedule(state, backfill, T0 + 11).state
    assert state is not None and len(state.buffered) == len(state.buffered_runs) == 1000 and state.skipped == 0
    with caplog.at_level(logging.WARNING, logger="engine"):
        later = decide_schedule(state, command("trigger", "t2"), T0 + 12)
    assert later.state is not None and len(later.state.buffered) == 1000 and later.state.skipped == 1
    assert "1000 fires wait already (the most kept): fire skipped" in caplog.text
    assert size_of(later.state) < 60_000  # what buffering may take: far below the record limit


def test_a_fire_that_would_not_fit_is_skipped_and_the_schedule_keeps_firing(caplog: pytest.LogCaptureFixture) -> None:
    state = create("allow_all", CallArgs(("a" * 5_000,), {}))
    limit = size_of(state) + 25 * 35 + 20 * 35  # room for 25 running runs and 20 recent ones, roughly
    fired: list[str] = []
    with caplog.at_level(logging.WARNING, logger="engine"):
        for _ in range(60):
            decision = fire(state, limit)
            assert decision.error is None and decision.state is not None
            assert size_of(decision.state) <= limit
            assert any(isinstance(c, StartTimer) for c in decision.commands)  # the next fire is always armed
            fired += starts(decision)
            state = decision.state
    assert 25 < len(fired) < 60 and state.fires == len(fired) and state.skipped == 60 - len(fired)
    assert len(state.running) == len(fired) and len(state.recent_runs) == 1  # trimmed to the newest first
    assert "kept only its newest recent runs and request ids" in caplog.text
    assert "over the" in caplog.text and "the fire was skipped" in caplog.text
    state = decide_schedule(state, finished(state.running[0]), T0, size_of=size_of, max_bytes=limit).state
    assert state is not None
    assert starts(fire(state, limit)) != []  # a run ended: there is room for a fire again


def test_a_command_that_would_not_fit_is_refused_with_the_reason() -> None:
    state = create("allow_all", CallArgs(("a" * 5_000,), {}))
    limit = size_of(state) + 100
    refused = decide_schedule(
        state, command("update", "u1", args=CallArgs(("b" * 6_000,), {})), T0, size_of=size_of, max_bytes=limit
    )
    assert refused.changed is False and refused.error is not None
    assert refused.error.startswith("update refused: schedule 's': its state would be")
    assert f"over the {limit:,} bytes a schedule's state may take (the record limit, MAX_MESSAGE_BYTES" in refused.error
    assert "less room for its key): arguments about 6,0" in refused.error
    assert "0 running runs, 0 buffered fires" in refused.error
    fits = decide_schedule(state, command("update", "u2", note="n"), T0, size_of=size_of, max_bytes=limit)
    assert fits.error is None and fits.state is not None and fits.state.note == "n"


def test_a_run_s_end_on_a_full_state_leaves_its_buffered_fire_waiting_or_sheds_the_newest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = create("buffer_all")
    state = dataclasses.replace(
        state,
        running=("r" * 32,),
        buffered=tuple(range(T0, T0 + 40 * MIN, MIN)),
        buffered_runs=tuple(f"{n:032d}" for n in range(40)),
        recent_runs=(),  # nothing to trim: only waiting (or shedding) makes room
    )
    full = size_of(state)
    with caplog.at_level(logging.WARNING, logger="engine"):
        waits = decide_schedule(state, finished("r" * 32), T0, size_of=size_of, max_bytes=full - 20)
    assert waits.state is not None and starts(waits) == [] and waits.state.running == ()
    assert len(waits.state.buffered) == 40 and size_of(waits.state) <= full - 20
    shed = decide_schedule(state, finished("r" * 32), T0, size_of=size_of, max_bytes=full - 500)
    assert shed.state is not None and starts(shed) == [] and size_of(shed.state) <= full - 500
    assert len(shed.state.buffered) < 40 and shed.state.skipped == 40 - len(shed.state.buffered)
    assert "trimmed" in caplog.text
