"""The schedule state machine: commands, timers, overlap policies, idempotency — no Kafka."""

from __future__ import annotations

import json

import pytest

from engine import ScheduleSpec, fire_run_id, trigger_run_id
from engine.runtime import (
    CallArgs,
    CancelTimer,
    CancelWorkflow,
    RunFinished,
    ScheduleCommand,
    ScheduleState,
    StartTimer,
    StartWorkflow,
    TimerFired,
    decide_schedule,
    schedule_key,
)

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MIN  # a whole minute
EVERY_MINUTE = json.dumps(ScheduleSpec(interval="1m").to_wire())


def command(action: str, request: str, **fields: object) -> ScheduleCommand:
    return ScheduleCommand(schedule_id="s", action=action, request_id=request, requested_at=0, **fields)  # type: ignore[arg-type]


def create(overlap: str = "skip", spec: str = EVERY_MINUTE) -> ScheduleState:
    decision = decide_schedule(
        None, command("create", "c", workflow_name="wf", args=CallArgs((1,), {}), spec=spec, overlap=overlap), T0 + 5
    )
    assert decision.error is None and decision.state is not None
    assert decision.commands == (
        StartTimer(
            run_id="schedule:s",
            timer_id=f"schedule:1:{T0 + MIN}",
            position=0,
            kind="schedule",
            fire_at=T0 + MIN,
            requested_at=T0 + 5,
        ),
    )
    return decision.state


def fire(state: ScheduleState, now: int | None = None) -> tuple[ScheduleState, list[object]]:
    assert state.timer_id is not None and state.next_fire_at is not None
    fired = TimerFired(
        run_id=schedule_key("s"),
        timer_id=state.timer_id,
        position=0,
        kind="schedule",
        fire_at=state.next_fire_at,
        fired_at=state.next_fire_at,
    )
    decision = decide_schedule(state, fired, now if now is not None else state.next_fire_at + 3)
    assert decision.error is None and decision.state is not None, decision
    return decision.state, list(decision.commands)


def finish(
    state: ScheduleState, run_id: str, status: str = "completed", next_run_id: str | None = None
) -> tuple[ScheduleState, list[object]]:
    done = RunFinished(
        run_id=run_id,
        workflow_name="wf",
        status=status,
        next_run_id=next_run_id,
        parent_run_id="schedule:s",
        started_at=1,
        finished_at=2,
    )
    decision = decide_schedule(state, done, T0 + 100 * MIN)
    assert decision.state is not None
    return decision.state, list(decision.commands)


def starts(commands: list[object]) -> list[str]:
    return [c.run_id for c in commands if isinstance(c, StartWorkflow)]


def test_a_fire_starts_the_derived_run_and_arms_the_next_timer() -> None:
    state, commands = fire(create())
    run_id = fire_run_id("s", T0 + MIN)
    start = commands[0]
    assert isinstance(start, StartWorkflow) and start.run_id == run_id
    assert start.parent_run_id == "schedule:s" and start.workflow_name == "wf" and start.args == CallArgs((1,), {})
    assert isinstance(commands[1], StartTimer) and commands[1].fire_at == T0 + 2 * MIN
    assert state.running == (run_id,) and state.fires == 1 and state.last_fire_at == T0 + MIN
    assert state.next_fire_at == T0 + 2 * MIN and state.timer_id == f"schedule:1:{T0 + 2 * MIN}"


def test_a_stale_or_repeated_timer_changes_nothing() -> None:
    state = create()
    fired_state, _ = fire(state)
    again = TimerFired(
        run_id="schedule:s",
        timer_id=state.timer_id or "",
        position=0,
        kind="schedule",
        fire_at=T0 + MIN,
        fired_at=T0 + MIN,
    )
    decision = decide_schedule(fired_state, again, T0 + MIN + 10)  # the timer processor delivered it twice
    assert not decision.changed and decision.commands == () and "stale" in (decision.ignored or "")


def test_after_an_outage_the_first_missed_fire_and_those_in_the_catchup_window_fire_the_rest_are_skipped() -> None:
    state, commands = fire(create(), now=T0 + 10 * MIN + 7)  # down for nine minutes; window: the default minute
    assert starts(commands) == [fire_run_id("s", T0 + MIN)]
    assert state.skipped == 8  # T0+2m .. T0+9m were due more than a minute ago
    assert state.next_fire_at == T0 + 10 * MIN and commands[-1] == StartTimer(
        run_id="schedule:s",
        timer_id=f"schedule:1:{T0 + 10 * MIN}",
        position=0,
        kind="schedule",
        fire_at=T0 + 10 * MIN,
        requested_at=T0 + 10 * MIN + 7,
    )  # already due: the timer processor fires it now
    state, commands = fire(state, now=T0 + 10 * MIN + 40)
    assert starts(commands) == [] and state.skipped == 9  # the skip policy: the first fire's run still runs
    assert state.next_fire_at == T0 + 11 * MIN


def test_with_no_catchup_window_only_the_first_missed_fire_fires() -> None:
    spec = json.dumps(ScheduleSpec(interval="1m", catchup_window=0).to_wire())
    state, commands = fire(create(spec=spec), now=T0 + 10 * MIN + 7)
    assert starts(commands) == [fire_run_id("s", T0 + MIN)]
    assert state.skipped == 9 and state.next_fire_at == T0 + 11 * MIN


def test_a_stall_shorter_than_the_catchup_window_loses_no_fire() -> None:
    state = create("allow_all")
    fired: list[str] = []
    for now in (T0 + 2 * MIN + 30_000, T0 + 2 * MIN + 30_050, T0 + 3 * MIN + 1):  # the first fire came 90 s late
        state, commands = fire(state, now=now)
        fired += starts(commands)
    assert fired == [fire_run_id("s", T0 + k * MIN) for k in (1, 2, 3)] and state.skipped == 0


def test_a_long_outage_of_a_frequent_schedule_goes_straight_to_the_window() -> None:
    spec = json.dumps(ScheduleSpec(interval="1s").to_wire())
    decision = decide_schedule(None, command("create", "c", workflow_name="wf", spec=spec, overlap="allow_all"), T0)
    assert decision.state is not None
    now = T0 + 2 * 3600_000  # two hours of fires every second missed
    state, commands = fire(decision.state, now=now)
    assert starts(commands) == [fire_run_id("s", T0 + 1000)]
    assert state.next_fire_at == now - MIN
    assert state.skipped == 2 * 3600 - 60 - 2  # T0+2s .. T0+7139s: every fire between the first and the window


def test_a_long_outage_counts_cron_fires_and_respects_jitter_at_the_window_edge() -> None:
    spec = ScheduleSpec(cron="* * * * *", jitter="30s", catchup_window="5m")
    decision = decide_schedule(
        None, command("create", "c", workflow_name="wf", spec=json.dumps(spec.to_wire()), overlap="allow_all"), T0
    )
    assert decision.state is not None
    now = T0 + 3 * 24 * 60 * MIN  # three days of minutes missed
    state, _commands = fire(decision.state, now=now)
    horizon = now - 5 * MIN
    nominals = range(T0 + 2 * MIN, now + 1, MIN)
    missed = [t for t in nominals if t + spec.jitter_ms("s", t) < horizon]
    assert state.skipped == len(missed) and state.next_fire_at == max(missed) + MIN


@pytest.mark.parametrize(
    "policy,expected_starts,buffered,skipped",
    [
        ("skip", 0, (), 1),
        ("buffer_one", 0, (T0 + 2 * MIN,), 0),
        ("buffer_all", 0, (T0 + 2 * MIN,), 0),
        ("allow_all", 1, (), 0),
        ("cancel_other", 1, (), 0),
    ],
)
def test_overlap_policy_while_a_run_is_still_running(
    policy: str, expected_starts: int, buffered: tuple[int, ...], skipped: int
) -> None:
    state, _ = fire(create(policy))
    first = state.running[0]
    state, commands = fire(state)
    assert len(starts(commands)) == expected_starts
    assert state.buffered == buffered and state.skipped == skipped
    cancels = [c.run_id for c in commands if isinstance(c, CancelWorkflow)]
    assert cancels == ([first] if policy == "cancel_other" else [])


def test_buffer_one_keeps_one_and_buffer_all_keeps_all_then_they_start_one_at_a_time() -> None:
    for policy, kept in (("buffer_one", 1), ("buffer_all", 3)):
        state, _ = fire(create(policy))
        first = state.running[0]
        nominals = []
        for _ in range(3):
            nominals.append(state.next_fire_at)
            state, _ = fire(state)
        assert len(state.buffered) == kept and state.skipped == 3 - kept
        state, commands = finish(state, first)
        # a buffered fire starts under the id it was fired with
        assert starts(commands) == [fire_run_id("s", nominals[0])] and len(state.buffered) == kept - 1
        assert state.running == tuple(starts(commands))
        assert len(state.buffered_runs) == len(state.buffered)


def test_a_buffered_trigger_starts_under_the_id_the_sender_was_given_and_not_while_paused() -> None:
    state, _ = fire(create("buffer_one"))
    first = state.running[0]
    triggered = decide_schedule(state, command("trigger", "t1"), T0 + MIN + 30)
    assert triggered.state is not None and triggered.state.buffered_runs == (trigger_run_id("s", "t1"),)
    paused = decide_schedule(triggered.state, command("pause", "p"), T0 + MIN + 31)
    assert paused.state is not None
    state, commands = finish(paused.state, first)
    assert commands == [] and state.buffered_runs == (trigger_run_id("s", "t1"),)  # paused: it waits
    resumed = decide_schedule(state, command("resume", "r"), T0 + 100 * MIN + 1)
    assert starts(list(resumed.commands)) == [trigger_run_id("s", "t1")]


def test_jitter_is_not_mistaken_for_missed_fires() -> None:
    spec = ScheduleSpec(interval="1s", jitter="3s")
    decision = decide_schedule(
        None, command("create", "c", workflow_name="wf", spec=json.dumps(spec.to_wire()), overlap="allow_all"), T0
    )
    state = decision.state
    assert state is not None
    for _ in range(10):
        assert state.next_fire_at is not None
        due = state.next_fire_at + spec.jitter_ms("s", state.next_fire_at)
        state, _ = fire(state, now=due + 2)
    assert state.skipped <= 3 and state.fires == 10


def test_a_run_that_continues_as_new_is_still_the_schedules_run() -> None:
    state, _ = fire(create())
    state, commands = finish(state, state.running[0], "continued_as_new", next_run_id="next")
    assert state.running == ("next",) and commands == []
    state, _ = finish(state, "next")
    assert state.running == ()


def test_pause_disarms_resume_rearms_from_now_and_update_changes_what_starts() -> None:
    state = create()
    paused = decide_schedule(state, command("pause", "p", note="maintenance"), T0 + 30_000)
    assert paused.state is not None and paused.state.paused and paused.state.timer_id is None
    assert paused.commands == (
        CancelTimer(run_id="schedule:s", timer_id=state.timer_id or "", requested_at=T0 + 30_000),
    )
    resumed = decide_schedule(paused.state, command("resume", "r"), T0 + 5 * MIN + 1)
    assert resumed.state is not None and not resumed.state.paused and resumed.state.next_fire_at == T0 + 6 * MIN
    assert resumed.state.generation == 3
    spec = json.dumps(ScheduleSpec(cron="0 * * * *").to_wire())
    updated = decide_schedule(
        resumed.state, command("update", "u", args=CallArgs((2,), {}), spec=spec), T0 + 5 * MIN + 2
    )
    assert updated.state is not None and updated.state.args == CallArgs((2,), {})
    hour = 3_600_000
    assert updated.state.next_fire_at == (T0 + 5 * MIN + 2) // hour * hour + hour
    assert isinstance(updated.commands[0], CancelTimer) and isinstance(updated.commands[1], StartTimer)


def test_trigger_and_backfill_start_derived_runs_under_the_overlap_policy() -> None:
    state = create("allow_all")
    triggered = decide_schedule(state, command("trigger", "t1"), T0 + 7)
    assert triggered.state is not None and starts(list(triggered.commands)) == [trigger_run_id("s", "t1")]
    back = decide_schedule(triggered.state, command("backfill", "b1", range_start=T0 - 3 * MIN, range_end=T0), T0 + 8)
    assert starts(list(back.commands)) == [fire_run_id("s", T0 - k * MIN, "b1") for k in (3, 2, 1)]
    skip = create("skip")
    back = decide_schedule(skip, command("backfill", "b2", range_start=T0 - 3 * MIN, range_end=T0), T0 + 8)
    assert back.state is not None and len(starts(list(back.commands))) == 1 and back.state.skipped == 2


def test_a_repeated_request_is_a_no_op() -> None:
    state = create("allow_all")
    once = decide_schedule(state, command("trigger", "t1"), T0 + 7)
    assert once.state is not None
    twice = decide_schedule(once.state, command("trigger", "t1"), T0 + 9)
    assert not twice.changed and twice.commands == ()
    assert not decide_schedule(state, command("create", "c"), T0).changed  # the create itself, re-sent


@pytest.mark.parametrize(
    "state_exists,cmd,reason",
    [
        (True, command("create", "c2", workflow_name="wf", spec=EVERY_MINUTE), "exists already"),
        (False, command("pause", "p"), "no schedule 's'"),
        (False, command("create", "c", spec=EVERY_MINUTE), "needs a workflow_name"),
        (False, command("create", "c", workflow_name="wf", spec=json.dumps({"cron": "61 * * * *"})), "minute"),
        (
            False,
            command("create", "c", workflow_name="wf", spec=EVERY_MINUTE, overlap="sometimes"),
            "unknown overlap policy 'sometimes'",
        ),
        (True, command("backfill", "b", range_start=0, range_end=T0), "more than 1000 fires"),
        (True, command("explode", "x"), "unknown schedule action"),
    ],
)
def test_refused_commands_say_why_and_change_nothing(state_exists: bool, cmd: ScheduleCommand, reason: str) -> None:
    state = create() if state_exists else None
    decision = decide_schedule(state, cmd, T0 + 1)
    assert decision.error is not None and reason in decision.error
    assert not decision.changed and decision.state == state and decision.commands == ()


def test_delete_cancels_the_timer_and_leaves_running_runs_alone() -> None:
    state, _ = fire(create())
    deleted = decide_schedule(state, command("delete", "d"), T0 + MIN + 9)
    assert deleted.state is None and deleted.changed
    assert [type(c).__name__ for c in deleted.commands] == ["CancelTimer"]
    again = decide_schedule(None, command("delete", "d2"), T0 + MIN + 10)
    assert not again.changed and again.error == "no schedule 's'"  # the sender waits for an answer


def test_a_schedule_past_its_end_arms_nothing() -> None:
    spec = json.dumps(ScheduleSpec(interval="1m", end_at=T0 + MIN).to_wire())
    decision = decide_schedule(None, command("create", "c", workflow_name="wf", spec=spec), T0 + 5)
    assert decision.state is not None and decision.state.next_fire_at == T0 + MIN
    state, commands = fire(decision.state)
    assert state.next_fire_at is None and state.timer_id is None
    assert [type(c).__name__ for c in commands] == ["StartWorkflow"]


def test_jitter_delays_the_timer_not_the_nominal_time() -> None:
    spec = ScheduleSpec(interval="1m", jitter="30s")
    decision = decide_schedule(
        None, command("create", "c", workflow_name="wf", spec=json.dumps(spec.to_wire())), T0 + 5
    )
    assert decision.state is not None and decision.state.next_fire_at == T0 + MIN
    timer = decision.commands[0]
    assert isinstance(timer, StartTimer) and timer.fire_at == T0 + MIN + spec.jitter_ms("s", T0 + MIN)
