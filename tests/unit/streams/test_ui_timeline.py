"""A run's history as the run page's timeline (``streams.ui.timeline_of``) — no server."""

from __future__ import annotations

from engine.runtime import (
    CallArgs,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowStarted,
    ErrorInfo,
    HistoryEvent,
    HookCreated,
    HookReceived,
    StepCompleted,
    StepFailed,
    StepScheduled,
    TimerElapsed,
    TimerScheduled,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowStarted,
)
from streams.ui import Timeline, timeline_of

RUN = "r" * 32
T0 = 1_700_000_000_000
ARGS = CallArgs((), {})
BUSY = ErrorInfo(type="engine.RetryableError", message="busy", retryable=True)


def basic() -> list[HistoryEvent]:
    """examples.basic's history: reserve fails once and is retried, a 1 s sleep, charge, notify."""
    started = WorkflowStarted(run_id=RUN, seq=1, timestamp=T0, workflow_name="order", args=ARGS)
    events: list[HistoryEvent] = [started]

    def add(event_type: type, at: int, **fields: object) -> None:
        events.append(event_type(run_id=RUN, seq=len(events) + 1, timestamp=T0 + at, **fields))

    add(StepScheduled, 0, position=0, step_name="reserve", args=ARGS, attempt=1, max_retries=3)
    add(StepFailed, 300, position=0, attempt=1, error=BUSY, retry_at=T0 + 500)
    add(TimerScheduled, 300, position=0, timer_id="t0", kind="retry", fire_at=T0 + 500)
    add(TimerElapsed, 500, position=0, timer_id="t0", kind="retry")
    add(StepScheduled, 500, position=0, step_name="reserve", args=ARGS, attempt=2, max_retries=3)
    add(StepCompleted, 540, position=0, attempt=2, result={})
    add(TimerScheduled, 540, position=1, timer_id="t1", kind="sleep", fire_at=T0 + 1540)
    add(TimerElapsed, 1540, position=1, timer_id="t1", kind="sleep")
    add(StepScheduled, 1540, position=2, step_name="charge", args=ARGS, attempt=1, max_retries=3)
    add(StepCompleted, 1570, position=2, attempt=1, result={})
    add(WorkflowCompleted, 1600, result={})
    return events


def shape(timeline: Timeline) -> list[tuple[str, str, list[tuple[int, int | None, str]]]]:
    return [
        (lane.kind, lane.title, [(s.start - T0, None if s.end is None else s.end - T0, s.state) for s in lane.segments])
        for lane in timeline.lanes
    ]


def test_steps_with_their_attempts_and_retry_wait_and_a_sleep() -> None:
    timeline = timeline_of(basic(), now_ms=T0 + 99_999)
    assert (timeline.start, timeline.end, timeline.finished) == (T0, T0 + 1600, True)
    assert shape(timeline) == [
        ("step", "reserve", [(0, 300, "failed"), (300, 500, "retry"), (500, 540, "ok")]),
        ("sleep", "sleep", [(540, 1540, "completed")]),
        ("step", "charge", [(1540, 1570, "ok")]),
    ]
    labels = [s.label for s in timeline.lanes[0].segments]
    assert labels == ["attempt 1: engine.RetryableError", "retry in 200ms", "attempt 2"]
    assert timeline.lanes[1].segments[0].label == "sleep 1.0s"


def test_a_running_run_goes_on_until_now_with_its_hook_waiting() -> None:
    events = basic()[:1]
    token = f"{RUN}:approval"
    events.append(HookCreated(run_id=RUN, seq=2, timestamp=T0 + 10, position=0, name="approval", token=token))
    timeline = timeline_of(events, now_ms=T0 + 5000)
    assert (timeline.end, timeline.finished) == (T0 + 5000, False)
    assert shape(timeline) == [("hook", "approval", [(10, None, "waiting")])]
    assert timeline.lanes[0].token == f"{RUN}:approval"


def test_a_hook_received_a_child_and_a_cancellation() -> None:
    token = f"{RUN}:approval"
    events: list[HistoryEvent] = [
        WorkflowStarted(run_id=RUN, seq=1, timestamp=T0, workflow_name="parent", args=ARGS),
        HookReceived(run_id=RUN, seq=2, timestamp=T0 + 5, position=-1, token=token, payload={"ok": True}),
        HookCreated(run_id=RUN, seq=3, timestamp=T0 + 10, position=0, name="approval", token=token),
        HookReceived(run_id=RUN, seq=4, timestamp=T0 + 10, position=0, token=token, payload={"ok": True}),
        ChildWorkflowStarted(
            run_id=RUN,
            seq=5,
            timestamp=T0 + 20,
            position=1,
            child_run_id="c1",
            workflow_name="kid",
            args=ARGS,
            wait_for_completion=True,
        ),
        ChildWorkflowCompleted(run_id=RUN, seq=6, timestamp=T0 + 80, position=1, child_run_id="c1", result=1),
        TimerScheduled(run_id=RUN, seq=7, timestamp=T0 + 80, position=2, timer_id="t", kind="sleep", fire_at=T0 + 9999),
        CancelRequested(run_id=RUN, seq=8, timestamp=T0 + 90, reason="enough"),
        WorkflowCancelled(run_id=RUN, seq=9, timestamp=T0 + 95, reason="enough"),
    ]
    timeline = timeline_of(events, now_ms=T0 + 10**6)
    assert shape(timeline) == [
        ("hook", "approval", [(10, 10, "received")]),
        ("child", "kid", [(20, 80, "completed")]),
        ("sleep", "sleep", [(80, 95, "closed")]),  # the run ended while it slept
    ]
    assert timeline.lanes[1].child_run_id == "c1"
    assert [(m.at - T0, m.label) for m in timeline.markers] == [
        (5, f"payload queued for {token}"),
        (90, "cancel requested: enough"),
    ]


def test_an_empty_history_has_no_lanes() -> None:
    timeline = timeline_of([], now_ms=T0)
    assert (timeline.lanes, timeline.markers, timeline.finished) == ([], [], False)
