"""Inputs and commands: the record model of docs/records.md (history events are in ``engine._events``).

Class and field names equal the Avro record and field names. Fields whose Avro
type is ``Payload`` hold decoded Python values here (call arguments as
``CallArgs``, results and hook payloads as plain objects); a later layer maps
these dataclasses to Avro generically through ``dataclasses.fields``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class CallArgs:
    """Positional and keyword arguments of a workflow or step call (one ``Payload`` on the wire)."""

    args: tuple[object, ...]
    kwargs: dict[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """A serialisable description of an exception.

    ``type`` is the qualified class name (``"builtins.ValueError"``). ``retry_after_ms``
    carries ``RetryableError.retry_after`` from the worker to the orchestrator; it is not in
    docs/records.md yet (nullable, default null: readers without it simply lose the hint).
    """

    type: str
    message: str
    traceback: str | None = None
    retryable: bool
    retry_after_ms: int | None = None


# --- inputs (the inbox) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartWorkflow:
    """Start a run (inbox input; also emitted as a command for a child run or a continue-as-new successor)."""

    run_id: str
    workflow_name: str
    args: CallArgs
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_position: int | None = None
    continued_from: str | None = None
    requested_at: int
    depth: int = 0
    chain_attempt: int | None = None  # a continue-as-new successor: the predecessor's + 1; None = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelWorkflow:
    """Ask a run to cancel: ``CancellationError`` is raised at its current await (inbox input;
    also emitted as a command by a parent for a running child: ``handle.cancel()``, the parent's
    cancellation, or its end under the child's parent close policy ``"cancel"``)."""

    run_id: str
    reason: str | None = None
    requested_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeHook:
    """Deliver a payload to the hook waiting on ``token``."""

    run_id: str
    token: str
    payload: object
    requested_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """Outcome of one step attempt, reported by a worker."""

    run_id: str
    position: int
    attempt: int
    ok: bool
    result: object = None
    error: ErrorInfo | None = None
    worker: str
    started_at: int
    finished_at: int
    mac: bytes | None = None  # set by a worker holding the secret; hosts check it, the engine never reads it


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    """A timer came due (sent by the timer processor)."""

    run_id: str
    timer_id: str
    position: int
    kind: str
    fire_at: int
    fired_at: int
    mac: bytes | None = None  # set by a timer processor holding the secret; hosts check it, the engine never reads it


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetRun:
    """Drop the orchestrator's state of a finished run (``kflow compact``); later inputs are dead letters."""

    run_id: str
    reason: str | None = None
    requested_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleCommand:
    """Create/update/pause/resume/delete/trigger/backfill a schedule (inbox, keyed ``schedule:{id}``).

    ``spec`` is the JSON text of ``ScheduleSpec.to_wire()``; ``range_start`` <= nominal < ``range_end``
    for a backfill.
    """

    schedule_id: str
    action: str
    request_id: str
    workflow_name: str | None = None
    args: CallArgs | None = None
    spec: str | None = None
    overlap: str | None = None
    note: str | None = None
    range_start: int | None = None
    range_end: int | None = None
    requested_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleState:
    """The durable state of one schedule (compacted state topic, keyed ``schedule:{id}``)."""

    schedule_id: str
    workflow_name: str
    args: CallArgs
    spec: str
    overlap: str
    paused: bool
    note: str | None = None
    created_at: int
    updated_at: int
    generation: int
    next_fire_at: int | None = None
    timer_id: str | None = None
    running: tuple[str, ...] = ()
    buffered: tuple[int, ...] = ()
    buffered_runs: tuple[str, ...] = ()
    last_fire_at: int | None = None
    fires: int = 0
    skipped: int = 0
    recent_runs: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    # Outcomes of the runs it started (a chain counts once, by its last run); None in a state written before
    # they were counted (the counting starts at its next finished run).
    completed: int | None = None
    failed: int | None = None
    cancelled: int | None = None


# --- commands (tasks, timers, completions) -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteStep:
    """Run one attempt of a step on a worker (``timeout_ms`` is enforced by the worker).

    ``context`` is the run's step context when the step was issued (wire form, as in
    ``StepContextSet``), or None.
    """

    run_id: str
    workflow_name: str
    position: int
    attempt: int
    step_name: str
    args: CallArgs
    timeout_ms: int | None = None
    context: object = None
    scheduled_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTimer:
    """Arm a durable timer; ``timer_id`` is ``"{kind}:{position}:{attempt}"``, unique per run."""

    run_id: str
    timer_id: str
    position: int
    kind: str
    fire_at: int
    requested_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTimer:
    """Disarm a timer that is no longer needed."""

    run_id: str
    timer_id: str
    requested_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    """One record per finished run (completions topic; also a child's completion to its parent)."""

    run_id: str
    workflow_name: str
    status: str
    result: object = None
    error: ErrorInfo | None = None
    next_run_id: str | None = None
    parent_run_id: str | None = None
    parent_position: int | None = None
    started_at: int
    finished_at: int


Input = Union[StartWorkflow, CancelWorkflow, ResumeHook, StepResult, TimerFired, RunFinished]
"""Every record that drives a run (the inbox)."""

Command = Union[ExecuteStep, StartTimer, CancelTimer, StartWorkflow, CancelWorkflow, RunFinished]
"""Every record a run asks its host to send (StartWorkflow: a child or a continue-as-new successor;
CancelWorkflow: a parent's running child, routed to the child's partition)."""
