"""The JSON the UI's API answers (docs/ui.md): runs, histories, hooks, timelines, schedules and dead letters as plain
data. Values of arguments and results are shown as JSON can (``streams.ops.plain``; anything else as its repr)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Final

from engine import ScheduleSpec
from engine.runtime import (
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    HistoryEvent,
    ScheduleState,
    WorkflowCancelled,
    WorkflowStarted,
)
from streams.client import RunInfo
from streams.ops import HookView, hook_json, plain
from streams.ui._timeline import Timeline

NEXT_FIRES: Final = 5
"""How many of a schedule's next fire times ``schedule_json`` computes."""


def dumps(data: object) -> str:
    """JSON text of what this module returns (anything JSON lacks as its repr)."""
    return json.dumps(data, default=repr)


def run_json(info: RunInfo) -> dict[str, object]:
    """A run as the listing and the run page report it (``RunInfo``; times in epoch ms)."""
    error = info.error
    return {
        "run_id": info.run_id,
        "workflow": info.workflow_name,
        "status": str(info.status),
        "started_at": info.started_at,
        "finished_at": info.finished_at,
        "duration_ms": None if info.finished_at is None else max(0, info.finished_at - info.started_at),
        "args": plain(list(info.args)),
        "kwargs": plain(info.kwargs),
        "result": plain(info.result),
        "error": None if error is None else {"type": error.type, "message": error.message},
        "parent_run_id": info.parent_run_id,
        "parent_position": info.parent_position,
        "children": list(info.children),
        "continued_from": info.continued_from,
        "next_run_id": info.next_run_id,
        "idempotency_key": info.idempotency_key,
    }


def run_details(info: RunInfo, events: Sequence[HistoryEvent], hooks: Sequence[HookView]) -> dict[str, object]:
    """``run_json`` plus what the history adds: the chain position, the cancel reason, children with their state,
    and the hooks."""
    started = next((e for e in events if isinstance(e, WorkflowStarted)), None)
    cancelled = next((e for e in events if isinstance(e, WorkflowCancelled)), None)
    asked = next((e.reason for e in events if isinstance(e, CancelRequested) and e.reason), None)
    return {
        **run_json(info),
        "chain_position": None if started is None else (started.chain_attempt or 1),
        "cancel_reason": None if cancelled is None else (cancelled.reason or asked),
        "child_runs": children_of(events),
        "hooks": [hook_json(hook) for hook in hooks],
        "events": len(events),
    }


def children_of(events: Sequence[HistoryEvent]) -> list[dict[str, object]]:
    """The children a run started, in call order, with their state as its history knows it (``running`` until the
    child's end is recorded)."""
    children: dict[int, dict[str, object]] = {}
    for event in events:
        if isinstance(event, ChildWorkflowStarted):
            children[event.position] = {
                "position": event.position,
                "run_id": event.child_run_id,
                "workflow": event.workflow_name,
                "status": "running",
            }
        elif isinstance(event, ChildWorkflowCompleted | ChildWorkflowFailed) and event.position in children:
            children[event.position]["status"] = "completed" if isinstance(event, ChildWorkflowCompleted) else "failed"
    return list(children.values())


def timeline_json(timeline: Timeline) -> dict[str, object]:
    """The timeline (``streams.ui._timeline``) as plain data."""
    return dataclasses.asdict(timeline)


def spec_of(state: ScheduleState) -> ScheduleSpec:
    """A schedule's spec, from its state."""
    return ScheduleSpec.from_wire(json.loads(state.spec))


def schedule_status(state: ScheduleState) -> str:
    """``paused``, ``active`` (a fire is armed) or ``spent`` (no fire left)."""
    if state.paused:
        return "paused"
    return "active" if state.next_fire_at is not None else "spent"


def next_fires(state: ScheduleState, count: int = NEXT_FIRES) -> list[int]:
    """The next ``count`` nominal fire times (epoch ms) from the armed one on; none while paused or spent."""
    if state.paused or state.next_fire_at is None:
        return []
    spec, fires = spec_of(state), [state.next_fire_at]
    while len(fires) < count and (following := spec.next_fire(fires[-1])) is not None:
        fires.append(following)
    return fires


def schedule_json(state: ScheduleState) -> dict[str, object]:
    """A schedule: its state, spec (as ``ScheduleSpec.to_wire``), next fires and the runs it started lately."""
    return {
        "schedule_id": state.schedule_id,
        "workflow": state.workflow_name,
        "status": schedule_status(state),
        "spec": spec_of(state).to_wire(),
        "overlap": state.overlap,
        "note": state.note,
        "args": plain(list(state.args.args)),
        "kwargs": plain(state.args.kwargs),
        "next_fire_at": state.next_fire_at,
        "next_fires": next_fires(state),
        "last_fire_at": state.last_fire_at,
        "fires": state.fires,
        "skipped": state.skipped,
        "completed": state.completed,
        "failed": state.failed,
        "cancelled": state.cancelled,
        "running": list(state.running),
        "buffered": len(state.buffered),
        "recent_runs": list(state.recent_runs),
        "created_at": state.created_at,
        "updated_at": state.updated_at,
    }
