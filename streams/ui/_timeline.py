"""A run's history as a timeline: one lane per step, sleep, hook and child (by position), each a list of segments.

- a step: one segment per attempt, from its ``StepScheduled`` to its ``StepCompleted`` (``ok``) or ``StepFailed``
  (``failed``), and between attempts the wait for the retry (``retry``, until the next attempt or its ``retry_at``);
- a sleep: from its ``TimerScheduled`` (kind ``sleep``) to its ``TimerElapsed``;
- a hook: from its ``HookCreated`` until a payload is delivered (``received``) or it expires (``expired``), with its
  token; a payload that arrived before the ``hook()`` call is a marker;
- a child: from its ``ChildWorkflowStarted`` to its ``ChildWorkflowCompleted`` / ``ChildWorkflowFailed``, with its id.

A segment still open has ``end`` None: it goes on while the run runs (``running`` / ``waiting``), and ends with the
run (``closed``) when the run has ended. Cancellation requests and step-context changes are markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from engine.runtime import (
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    HistoryEvent,
    HookCreated,
    HookExpired,
    HookReceived,
    StepCompleted,
    StepContextSet,
    StepFailed,
    StepScheduled,
    TimerElapsed,
    TimerScheduled,
    status_of,
)
from streams.ops import format_duration


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of a lane: ``start``/``end`` epoch ms (``end`` None: still going), a state, and a label."""

    start: int
    end: int | None
    state: str  # ok, failed, retry, running, waiting, received, expired, completed, closed
    label: str


@dataclass(slots=True)
class Lane:
    """One call of the workflow: ``kind`` step, sleep, hook or child, at ``position``, titled ``title``."""

    kind: str
    position: int
    title: str
    segments: list[Segment] = field(default_factory=list)
    token: str | None = None  # a hook's
    child_run_id: str | None = None  # a child's


@dataclass(frozen=True, slots=True)
class Marker:
    """A moment worth showing on the time axis."""

    at: int
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """From the run's first event to its end (or ``now`` while it runs): its lanes in call order, and markers."""

    start: int
    end: int
    finished: bool
    lanes: list[Lane]
    markers: list[Marker]


def timeline_of(events: Sequence[HistoryEvent], now_ms: int) -> Timeline:
    """The timeline of a run's history (ordered by seq); an empty history has no lanes."""
    lanes: dict[tuple[str, int], Lane] = {}
    markers: list[Marker] = []
    ended = next((e.timestamp for e in events if status_of(e) is not None), None)
    for event in events:
        _apply(event, lanes, markers)
    start = events[0].timestamp if events else now_ms
    end = ended if ended is not None else max(now_ms, events[-1].timestamp if events else now_ms)
    ordered = sorted(lanes.values(), key=lambda lane: (lane.position, lane.kind))
    closed = [_close(lane, ended) for lane in ordered]
    return Timeline(start, max(end, start), ended is not None, closed, markers)


def _apply(event: HistoryEvent, lanes: dict[tuple[str, int], Lane], markers: list[Marker]) -> None:
    if isinstance(event, StepScheduled | StepCompleted | StepFailed):
        _step(event, lanes)
    elif isinstance(event, TimerScheduled) and event.kind == "sleep":
        lane = lanes.setdefault(("sleep", event.position), Lane("sleep", event.position, "sleep"))
        label = f"sleep {format_duration(max(0, event.fire_at - event.timestamp))}"
        lane.segments.append(Segment(event.timestamp, None, "waiting", label))
    elif isinstance(event, TimerElapsed) and event.kind == "sleep" and ("sleep", event.position) in lanes:
        _end_last(lanes[("sleep", event.position)], event.timestamp, "completed")
    elif isinstance(event, HookCreated | HookReceived | HookExpired):
        _hook(event, lanes, markers)
    elif isinstance(event, ChildWorkflowStarted):
        lane = Lane("child", event.position, event.workflow_name, child_run_id=event.child_run_id)
        lane.segments.append(Segment(event.timestamp, None, "running", f"child {event.child_run_id}"))
        lanes[("child", event.position)] = lane
    elif isinstance(event, ChildWorkflowCompleted | ChildWorkflowFailed) and ("child", event.position) in lanes:
        state = "completed" if isinstance(event, ChildWorkflowCompleted) else "failed"
        _end_last(lanes[("child", event.position)], event.timestamp, state)
    elif isinstance(event, CancelRequested):
        markers.append(Marker(event.timestamp, f"cancel requested{f': {event.reason}' if event.reason else ''}"))
    elif isinstance(event, StepContextSet):
        markers.append(Marker(event.timestamp, "step context set"))


def _step(event: StepScheduled | StepCompleted | StepFailed, lanes: dict[tuple[str, int], Lane]) -> None:
    if isinstance(event, StepScheduled):
        lane = lanes.setdefault(("step", event.position), Lane("step", event.position, event.step_name))
        if lane.segments and lane.segments[-1].state == "retry":
            _end_last(lane, event.timestamp, "retry")
        lane.segments.append(Segment(event.timestamp, None, "running", f"attempt {event.attempt}"))
        return
    lane_or_none = lanes.get(("step", event.position))
    if lane_or_none is None:
        return
    if isinstance(event, StepCompleted):
        _end_last(lane_or_none, event.timestamp, "ok")
        return
    _end_last(lane_or_none, event.timestamp, "failed", f"attempt {event.attempt}: {event.error.type}")
    if event.retry_at is not None:
        wait = format_duration(max(0, event.retry_at - event.timestamp))
        lane_or_none.segments.append(Segment(event.timestamp, None, "retry", f"retry in {wait}"))


def _hook(
    event: HookCreated | HookReceived | HookExpired, lanes: dict[tuple[str, int], Lane], markers: list[Marker]
) -> None:
    if isinstance(event, HookCreated):
        lane = Lane("hook", event.position, event.name, token=event.token)
        lane.segments.append(Segment(event.timestamp, None, "waiting", f"waiting on {event.token}"))
        lanes[("hook", event.position)] = lane
        return
    if isinstance(event, HookReceived) and event.position < 0:
        markers.append(Marker(event.timestamp, f"payload queued for {event.token}"))
        return
    waiting = lanes.get(("hook", event.position))
    if waiting is not None:
        _end_last(waiting, event.timestamp, "received" if isinstance(event, HookReceived) else "expired")


def _end_last(lane: Lane, at: int, state: str, label: str | None = None) -> None:
    if lane.segments and lane.segments[-1].end is None:
        last = lane.segments[-1]
        lane.segments[-1] = replace(last, end=at, state=state, label=label or last.label)


def _close(lane: Lane, ended: int | None) -> Lane:
    """Segments still open when the run ended end with it, ``closed``."""
    if ended is not None and lane.segments and lane.segments[-1].end is None:
        _end_last(lane, ended, "closed")
    return lane
