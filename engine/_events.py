"""History events: what a run records, in order, on the history topic (docs/records.md, "History events").

Past tense, one class per Avro record of the same name; ``seq`` is dense from 1 per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union, get_args

from ._records import CallArgs, ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStarted:
    """First event of every run."""

    run_id: str
    seq: int
    timestamp: int
    workflow_name: str
    args: CallArgs
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_position: int | None = None
    continued_from: str | None = None
    deadline_at: int | None = None
    depth: int = 0
    chain_attempt: int | None = None  # the run's place in its continue-as-new chain; None = 1 (get_context().attempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepScheduled:
    """A step attempt was sent to the workers."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    step_name: str
    args: CallArgs
    attempt: int
    max_retries: int
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCompleted:
    """A step attempt succeeded; ``result`` is what the workflow receives."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    attempt: int
    result: object


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed:
    """A step attempt failed; ``retry_at`` null means final (the workflow sees the error)."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    attempt: int
    error: ErrorInfo
    retry_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerScheduled:
    """A durable timer was armed (kind ``sleep``, ``retry``, ``hook_timeout``, ``workflow_timeout``)."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    timer_id: str
    kind: str
    fire_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerElapsed:
    """A timer fired while it was still armed."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    timer_id: str
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HookCreated:
    """The workflow started waiting on a hook."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    name: str
    token: str
    expires_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HookReceived:
    """A hook payload was delivered."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    token: str
    payload: object


@dataclass(frozen=True, slots=True, kw_only=True)
class HookExpired:
    """A hook's timeout elapsed before a payload arrived."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowStarted:
    """A child run was started (issue 5)."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    child_run_id: str
    workflow_name: str
    args: CallArgs
    wait_for_completion: bool
    parent_close_policy: str | None = None  # "cancel" | "abandon"; None (written before 0.2) means "cancel"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowCompleted:
    """A child run completed (issue 5)."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    child_run_id: str
    result: object


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowFailed:
    """A child run failed (issue 5)."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    child_run_id: str
    error: ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildWorkflowCancelRequested:
    """The run asked a child to cancel (a CancelWorkflow went to the child's inbox).

    ``position`` is the child's (its ChildWorkflowStarted); ``command_position`` the position of the
    ``handle.cancel()`` call that asked, or None when the run asked itself: it was cancelled, or it ended
    and the child's parent close policy is ``"cancel"``.
    """

    run_id: str
    seq: int
    timestamp: int
    position: int
    child_run_id: str
    reason: str | None = None
    command_position: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepContextSet:
    """The workflow set its step context: ``context`` is ``{"type": "module.QualName", "data": {...}}``."""

    run_id: str
    seq: int
    timestamp: int
    position: int
    context: object


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequested:
    """Cancellation was requested."""

    run_id: str
    seq: int
    timestamp: int
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowCompleted:
    """The workflow returned."""

    run_id: str
    seq: int
    timestamp: int
    result: object


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowFailed:
    """The workflow raised (or timed out, or diverged from its history)."""

    run_id: str
    seq: int
    timestamp: int
    error: ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowCancelled:
    """A ``CancellationError`` escaped the workflow."""

    run_id: str
    seq: int
    timestamp: int
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowContinuedAsNew:
    """The run ended with ``continue_as_new``; ``next_run_id`` is its successor."""

    run_id: str
    seq: int
    timestamp: int
    next_run_id: str
    args: CallArgs


HistoryEvent = Union[
    WorkflowStarted,
    StepScheduled,
    StepCompleted,
    StepFailed,
    TimerScheduled,
    TimerElapsed,
    HookCreated,
    HookReceived,
    HookExpired,
    ChildWorkflowStarted,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowCancelRequested,
    StepContextSet,
    CancelRequested,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    WorkflowContinuedAsNew,
]
"""Every history event type."""

TerminalEvent = Union[WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowContinuedAsNew]
"""The events that end a run."""

HISTORY_EVENT_TYPES: tuple[type, ...] = get_args(HistoryEvent)
"""The history event classes, for hosts that map records generically."""
