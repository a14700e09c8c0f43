"""Live handling: which history events an input produces (or why it is ignored).

Every decision emits its events through ``_record``, which also applies them, so the
resulting state is exactly what replaying those events would give.
"""

from __future__ import annotations

import itertools

from ._apply import apply_event
from ._children import CANCELLED_CHILD_ERROR
from ._core import RunCore
from ._events import (
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    HistoryEvent,
    HookExpired,
    HookReceived,
    StepCompleted,
    StepFailed,
    TimerElapsed,
)
from ._finish import successor_run_ids
from ._payload_size import early_payload_bytes
from ._pending import BUFFERED_POSITION, Pending, validate_payload
from ._records import CancelWorkflow, ErrorInfo, Input, ResumeHook, RunFinished, StartWorkflow, StepResult, TimerFired
from ._status import RunStatus

_MISSING_ERROR = ErrorInfo(
    type="engine.StepFailedError", message="the worker reported a failure without error details", retryable=True
)


_TIMER_KIND = {"sleep": "sleep", "step": "retry", "hook": "hook_timeout", "child_timeout": "child_timeout"}

MAX_CHAIN_LINKS = 100_000
"""How far a child's continue-as-new chain is followed to recognise its last run's completion (about 0.1 s)."""


class Rejection(str):
    """Why an input was ignored when it does not belong where it was delivered (not a duplicate or a stale
    input): ``Transition.rejected``, and the host dead-letters it."""


def decide(core: RunCore, received: Input) -> str | None:
    """Emit and apply the events for ``received``; return why it was ignored, or None."""
    if isinstance(received, StepResult):
        return _on_step_result(core, received)
    if isinstance(received, TimerFired):
        return _on_timer_fired(core, received)
    if isinstance(received, ResumeHook):
        return _on_resume_hook(core, received)
    if isinstance(received, CancelWorkflow):
        if core.cancel_requested:
            return "cancellation was already requested"
        _record(core, CancelRequested(**core.meta(), reason=received.reason))
        return None
    if isinstance(received, StartWorkflow):
        return f"run {core.run_id} was already started"
    if isinstance(received, RunFinished):
        return _on_child_finished(core, received)
    return f"unsupported input {type(received).__name__}"


def _record(core: RunCore, event: HistoryEvent) -> None:
    core.emit(event)
    apply_event(core, event)


def _on_step_result(core: RunCore, result: StepResult) -> str | None:
    position = result.position
    entry = core.pending.get(position)
    if entry is None or entry.kind != "step":
        if position < core.next_position:
            return f"the command at position {position} is already resolved (duplicate result)"
        return f"no step was issued at position {position}"
    if entry.awaiting_retry or result.attempt != entry.attempt:
        return (
            f"stale result for position {position} attempt {result.attempt}: the current "
            f"attempt is {entry.attempt}{' (waiting for its retry timer)' if entry.awaiting_retry else ''}"
        )
    if result.ok:
        _record(core, StepCompleted(**core.meta(), position=position, attempt=result.attempt, result=result.result))
        return None
    _on_step_failure(core, entry, result.error or _MISSING_ERROR)
    return None


def _on_step_failure(core: RunCore, entry: Pending, error: ErrorInfo) -> None:
    assert entry.step is not None
    attempt = entry.attempt
    # An abandoned (cancelled) step is recorded for audit but never retried.
    policy = entry.step.policy
    delay = None if entry.dropped else policy.next_delay_ms(attempt, error, core.run_id, entry.position)
    if delay is None:
        _record(core, StepFailed(**core.meta(), position=entry.position, attempt=attempt, error=error, retry_at=None))
        return
    retry_at = core.now_ms + delay
    _record(core, StepFailed(**core.meta(), position=entry.position, attempt=attempt, error=error, retry_at=retry_at))
    core.start_timer(entry.position, "retry", f"retry:{entry.position}:{attempt}", retry_at)


def _on_timer_fired(core: RunCore, fired: TimerFired) -> str | None:
    if fired.kind == "workflow_timeout":
        if core.deadline_timer != fired.timer_id:
            return f"timer {fired.timer_id} is not armed"
        _record(core, TimerElapsed(**core.meta(), position=fired.position, timer_id=fired.timer_id, kind=fired.kind))
        return None
    entry = core.pending.get(fired.position)
    if entry is None or entry.timer_id != fired.timer_id:
        return f"timer {fired.timer_id} is not armed (already fired, cancelled or stale)"
    _record(
        core,
        TimerElapsed(**core.meta(), position=fired.position, timer_id=fired.timer_id, kind=_TIMER_KIND[entry.kind]),
    )
    if entry.kind == "step":
        apply_event(core, core.schedule_step(entry, entry.attempt + 1))
    elif entry.kind == "hook":
        _record(core, HookExpired(**core.meta(), position=entry.position, token=entry.token or ""))
    return None


_USED = {
    "received": "already received its payload",
    "expired": "has expired",
    "queued": "already has a payload waiting for its hook() call",
    "abandoned": "is no longer awaited (the run cancelled that wait)",
}


def _on_resume_hook(core: RunCore, resume: ResumeHook) -> str | None:
    calls = [e for e in core.pending.values() if e.kind == "hook" and e.token == resume.token]
    waiting = [e for e in calls if not e.dropped]
    if not waiting:
        if not resume.token.startswith(f"{core.run_id}:"):
            return f"token {resume.token!r} does not belong to run {core.run_id}"
        _, sep, call = resume.token[len(core.run_id) + 1 :].partition("#")
        if sep and not (call.isdigit() and call[0] != "0" and int(call) >= 2):
            return (
                f"{resume.token!r} is no hook token: after '#' comes the number of the hook() call "
                "of that name, 2 or more"
            )
        used = "abandoned" if calls else core.used_tokens.get(resume.token)
        if used is not None:
            return f"hook token {resume.token!r} {_USED[used]}: a token takes one payload"
        refused = _over_early_budget(core, resume)
        if refused is not None:
            return refused
        # Early payload: keep it for the hook() call with this token instead of losing it.
        _record(
            core, HookReceived(**core.meta(), position=BUFFERED_POSITION, token=resume.token, payload=resume.payload)
        )
        return None
    entry = min(waiting, key=lambda e: e.position)
    try:
        validate_payload(entry.schema, resume.payload)
    except Exception as exc:
        return f"payload for token {resume.token!r} rejected by its schema: {exc}"
    _record(core, HookReceived(**core.meta(), position=entry.position, token=resume.token, payload=resume.payload))
    return None


def _over_early_budget(core: RunCore, resume: ResumeHook) -> str | None:
    """Why an early payload is refused: it would take the run's early payloads past ``early_hook_bytes``."""
    size, budget = early_payload_bytes(resume.token, resume.payload), core.limits.early_hook_bytes
    if core.hook_buffer_bytes + size <= budget:
        return None
    return (
        f"early hook payload for token {resume.token!r} refused: run {core.run_id} has not reached that hook() "
        f"call yet, and its early payloads would take {core.hook_buffer_bytes + size:,} bytes with this one "
        f"({size:,}), over the budget of {budget:,} bytes per run (EventLimits.early_hook_bytes, "
        "KFLOW_EARLY_HOOK_BYTES); send it again once the run waits on that hook"
    )


def _on_child_finished(core: RunCore, finished: RunFinished) -> str | None:
    """A child's RunFinished (its ``run_id`` is the child's; ``parent_*`` name this run)."""
    position = finished.parent_position
    if finished.parent_run_id != core.run_id or position is None:
        return f"RunFinished of run {finished.run_id} is not a completion of a child of run {core.run_id}"
    entry = core.pending.get(position)
    if entry is None or entry.kind != "child":
        if position < core.next_position:
            return f"the command at position {position} is already resolved (duplicate child completion)"
        return f"no child workflow was started at position {position}"
    child = entry.child_run_id or finished.run_id
    if finished.status == RunStatus.CONTINUED_AS_NEW:
        return (
            f"child run {finished.run_id} at position {position} continued as new as run "
            f"{finished.next_run_id}: waiting for the end of the chain"
        )
    if not _of_chain(child, finished.run_id):
        return Rejection(
            f"RunFinished of run {finished.run_id} names position {position} of run {core.run_id}, where child "
            f"run {child} was started: it is neither that run nor one it continued as"
        )
    if finished.status == RunStatus.COMPLETED:
        _record(
            core, ChildWorkflowCompleted(**core.meta(), position=position, child_run_id=child, result=finished.result)
        )
        return None
    if finished.status == RunStatus.CANCELLED:
        error = ErrorInfo(
            type=CANCELLED_CHILD_ERROR, message=f"child run {finished.run_id} was cancelled", retryable=False
        )
    elif finished.status == RunStatus.FAILED:
        error = finished.error or ErrorInfo(
            type="engine.KflowError",
            message=f"child run {finished.run_id} failed without error details",
            retryable=False,
        )
    else:
        return f"child run {finished.run_id} reported unknown status {finished.status!r}"
    _record(core, ChildWorkflowFailed(**core.meta(), position=position, child_run_id=child, error=error))
    return None


def _of_chain(child: str, run_id: str) -> bool:
    """Whether ``run_id`` is ``child`` or a run its continue-as-new chain became (followed for
    ``MAX_CHAIN_LINKS`` links: deterministic, so replay and live handling agree)."""
    return run_id == child or run_id in itertools.islice(successor_run_ids(child), MAX_CHAIN_LINKS)
