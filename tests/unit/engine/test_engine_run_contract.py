"""The Run / Transition contract a host relies on."""

from __future__ import annotations

import asyncio

import pytest

from engine import HistoryError, Registry, sleep, step, workflow
from engine.runtime import (
    CallArgs,
    CancelWorkflow,
    ExecuteStep,
    Run,
    RunFinished,
    StartTimer,
    StartWorkflow,
    StepResult,
    StepScheduled,
    TimerFired,
    WorkflowCompleted,
    WorkflowStarted,
)


@step
async def greet(name: str) -> str:
    return f"hi {name}"


@workflow
async def hello(name: str) -> str:
    text = await greet(name)
    await sleep("1m")
    return text


REGISTRY = Registry([hello, greet])
START = StartWorkflow(run_id="r1", workflow_name="hello", args=CallArgs(("ana",), {}), requested_at=0)


def ok(position: int, value: object) -> StepResult:
    return StepResult(
        run_id="r1", position=position, attempt=1, ok=True, result=value, worker="w", started_at=0, finished_at=0
    )


def test_transitions_number_events_and_list_commands() -> None:
    run, first = Run.start(REGISTRY, START, 1_000)
    assert [type(e) for e in first.events] == [WorkflowStarted, StepScheduled]
    assert [e.seq for e in first.events] == [1, 2] and {e.timestamp for e in first.events} == {1_000}
    (cmd,) = first.commands
    assert isinstance(cmd, ExecuteStep) and (cmd.position, cmd.attempt, cmd.timeout_ms) == (0, 1, 60_000)
    second = run.handle(ok(0, "hi ana"), 2_000)
    assert [e.seq for e in second.events] == [3, 4] and {e.timestamp for e in second.events} == {2_000}
    (timer,) = second.commands
    assert isinstance(timer, StartTimer) and timer.fire_at == 62_000
    third = run.handle(
        TimerFired(
            run_id="r1", timer_id=timer.timer_id, position=timer.position, kind="sleep", fire_at=62_000, fired_at=62_005
        ),
        62_005,
    )
    assert isinstance(third.events[-1], WorkflowCompleted) and third.events[-1].result == "hi ana"
    (finished,) = third.commands
    assert isinstance(finished, RunFinished)
    assert (finished.status, finished.result, finished.started_at, finished.finished_at) == (
        "completed",
        "hi ana",
        1_000,
        62_005,
    )
    assert run.finished and run.history_length == 6 and run.status == "completed"


def test_replay_rebuilds_without_output_and_continues_identically() -> None:
    live, first = Run.start(REGISTRY, START, 1_000)
    second = live.handle(ok(0, "hi ana"), 2_000)
    history = list(first.events + second.events)
    rebuilt = Run.replay(REGISTRY, history)
    assert (rebuilt.status, rebuilt.history_length, rebuilt.run_id) == ("running", 4, "r1")
    fired = TimerFired(run_id="r1", timer_id="sleep:1:1", position=1, kind="sleep", fire_at=62_000, fired_at=62_000)
    assert rebuilt.handle(fired, 62_000) == live.handle(fired, 62_000)


def test_workflow_time_never_goes_backwards() -> None:
    run, _ = Run.start(REGISTRY, START, 5_000)
    transition = run.handle(ok(0, "x"), 10)
    assert {e.timestamp for e in transition.events} == {5_000}


def test_foreign_input_and_unknown_timer_are_ignored() -> None:
    run, _ = Run.start(REGISTRY, START, 0)
    foreign = run.handle(CancelWorkflow(run_id="other", requested_at=0), 0)
    assert foreign.ignored == "input for run other delivered to run r1"
    assert run.history_length == 2


@pytest.mark.parametrize(
    "history",
    [
        [],
        [
            StepScheduled(
                run_id="r1",
                seq=1,
                timestamp=0,
                position=0,
                step_name="greet",
                args=CallArgs((), {}),
                attempt=1,
                max_retries=3,
            )
        ],
        [WorkflowStarted(run_id="r1", seq=2, timestamp=0, workflow_name="hello", args=CallArgs(("a",), {}))],
    ],
)
def test_malformed_histories_are_rejected(history: list[object]) -> None:
    with pytest.raises(HistoryError):
        Run.replay(REGISTRY, history)  # type: ignore[arg-type]


async def test_handle_inside_a_running_loop_restores_it() -> None:
    outer = asyncio.get_running_loop()
    run, _ = Run.start(REGISTRY, START, 0)
    run.handle(ok(0, "x"), 1)
    assert asyncio.get_running_loop() is outer
    assert asyncio.current_task() is not None
    await asyncio.sleep(0)


def test_recover_returns_finished_runs_without_output() -> None:
    run, first = Run.start(REGISTRY, START, 0)
    second = run.handle(ok(0, "x"), 1)
    third = run.handle(
        TimerFired(run_id="r1", timer_id="sleep:1:1", position=1, kind="sleep", fire_at=60_001, fired_at=60_001), 60_001
    )
    recovered, transition = Run.recover(REGISTRY, first.events + second.events + third.events, 70_000)
    assert recovered.status == "completed" and transition.events == () and transition.commands == ()


@workflow
async def naps(with_step: bool) -> str:
    if with_step:
        await asyncio.gather(sleep("2m"), greet("x"))
    await asyncio.gather(sleep("5m"), sleep("3m"))
    return "rested"


def test_asleep_until_is_the_earliest_sleep_when_the_run_waits_on_sleeps_only() -> None:
    registry = Registry([naps, greet, hello])
    run, _ = Run.start(
        registry, StartWorkflow(run_id="n", workflow_name="naps", args=CallArgs((False,), {}), requested_at=0), 1_000
    )
    assert run.asleep_until == 1_000 + 180_000  # the 3-minute one of the two
    busy, _ = Run.start(
        registry, StartWorkflow(run_id="b", workflow_name="naps", args=CallArgs((True,), {}), requested_at=0), 1_000
    )
    assert busy.asleep_until is None  # a step result may come at any time
    waiting, _ = Run.start(REGISTRY, START, 1_000)
    assert waiting.asleep_until is None  # waits on a step only
    waiting.handle(ok(0, "hi ana"), 2_000)
    assert waiting.asleep_until == 62_000
