"""Applying input-caused history events to a run's state (shared by live handling and replay).

Live handling decides which events an input produces (``_decide``) and applies them here;
replay applies the recorded events here. One code path, so both reach the same state.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ._children import status_of_child
from ._core import RunCore
from ._errors import ChildWorkflowFailedError, HookExpiredError, NonDeterminismError
from ._events import (
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    HistoryEvent,
    HookExpired,
    HookReceived,
    StepCompleted,
    StepFailed,
    StepScheduled,
    TimerElapsed,
)
from ._failures import rebuild_exception
from ._payload_size import early_payload_bytes
from ._pending import BUFFERED_POSITION, Pending, validate_payload


def apply_event(core: RunCore, event: HistoryEvent) -> None:
    """Apply one input-caused event: resolve futures, arm/disarm state.

    Raises:
        NonDeterminismError: (replay) the event refers to a command the code has not issued.
    """
    if isinstance(event, StepCompleted):
        _settle(core, _entry(core, event.position, "step", event), result=event.result)
    elif isinstance(event, StepFailed):
        _apply_step_failed(core, event)
    elif isinstance(event, StepScheduled):
        entry = _entry(core, event.position, "step", event)
        entry.attempt, entry.awaiting_retry, entry.timer_id = event.attempt, False, None
    elif isinstance(event, TimerElapsed):
        _apply_timer_elapsed(core, event)
    elif isinstance(event, HookReceived):
        _apply_hook_received(core, event)
    elif isinstance(event, HookExpired):
        entry = _entry(core, event.position, "hook", event)
        core.used_tokens[event.token] = "expired"
        _settle(core, entry, error=HookExpiredError(f"hook {entry.name!r} (token {event.token}) expired"))
    elif isinstance(event, ChildWorkflowCompleted):
        entry = _entry(core, event.position, "child", event)
        entry.child_status = status_of_child(event)
        _settle(core, entry, result=event.result)
    elif isinstance(event, ChildWorkflowFailed):
        entry = _entry(core, event.position, "child", event)
        entry.child_status = status_of_child(event)
        error = event.error
        _settle(
            core,
            entry,
            error=ChildWorkflowFailedError(
                f"child workflow {entry.name!r} run {event.child_run_id} failed: {error.type}: {error.message}",
                event.child_run_id,
                error.type,
            ),
        )
    elif isinstance(event, CancelRequested):
        core.cancel_requested, core.cancel_reason = True, event.reason
        if core.shield_depth == 0:
            core.deliver_cancellation()


def _apply_step_failed(core: RunCore, event: StepFailed) -> None:
    entry = _entry(core, event.position, "step", event)
    if event.retry_at is not None:
        entry.awaiting_retry = True
        entry.timer_id = f"retry:{event.position}:{event.attempt}"
        return
    _settle(core, entry, error=rebuild_exception(event.error))


def _apply_timer_elapsed(core: RunCore, event: TimerElapsed) -> None:
    if event.kind == "workflow_timeout":
        core.deadline_timer = None
        core.timed_out = True
        return
    entry = _entry(core, event.position, None, event)
    entry.timer_id = None
    if entry.kind in ("sleep", "child_timeout"):
        _settle(core, entry, result=None)


def _apply_hook_received(core: RunCore, event: HookReceived) -> None:
    if event.position == BUFFERED_POSITION:
        # An early payload: kept (FIFO per token) until the code calls hook() with its token.
        core.hook_buffer.setdefault(event.token, deque()).append(event.payload)
        core.hook_buffer_bytes += early_payload_bytes(event.token, event.payload)
        core.used_tokens[event.token] = "queued"
        return
    core.used_tokens[event.token] = "received"
    entry = _entry(core, event.position, "hook", event)
    if entry.timer_id is not None:
        core.cancel_timer(entry.timer_id)  # the payload beat the timeout
    try:
        value = validate_payload(entry.schema, event.payload)
    except Exception as exc:  # the workflow sees the validation error at its await
        _settle(core, entry, error=exc)
    else:
        _settle(core, entry, result=value)


def _entry(core: RunCore, position: int, kind: str | None, event: HistoryEvent) -> Pending:
    entry = core.pending.get(position)
    if entry is None or (kind is not None and entry.kind != kind):
        issued = "nothing" if entry is None else f"a {entry.kind}"
        raise NonDeterminismError(
            f"workflow {core.workflow.name!r} run {core.run_id}: history has "
            f"{type(event).__name__} for position {position} but the workflow code has {issued} "
            "waiting there",
            position,
            type(event).__name__,
            issued,
        )
    return entry


def _settle(core: RunCore, entry: Pending, *, result: object = None, error: BaseException | None = None) -> None:
    """Forget the entry and resolve its future, unless nobody awaits it any more."""
    core.pending.pop(entry.position, None)
    if entry.dropped:
        return
    future: asyncio.Future[object] = entry.future
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
