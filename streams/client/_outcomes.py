"""What a client reports about a run: its ``RunInfo``, the outcome of its ``RunFinished`` (the result, or its
error raised), and the error of a hook payload that was not delivered."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from engine import (
    CancellationError,
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    InvalidTokenError,
    KflowError,
    RunStatus,
)
from engine.runtime import (
    ChildWorkflowStarted,
    ErrorInfo,
    HistoryEvent,
    RunFinished,
    WorkflowStarted,
    hook_refusal_error,
    rebuild_exception,
    status_of,
)


class HookDeliveryError(KflowError):
    """A hook payload that cannot be delivered: no such run, the run has finished, the token does not
    belong to it, the hook's ``payload_schema`` rejected the payload, or the token is malformed.

    ``refused`` raises it as a subclass that is also pyworkflow-engine's error for the case, for code that
    catches those: ``engine.InvalidTokenError`` (malformed token), ``HookNotFoundError`` (no such run, the run
    finished, or cancelled that wait), ``HookAlreadyReceivedError`` (the token took its payload already),
    ``HookExpiredError`` (the hook timed out).

    Attributes:
        token: the hook token the payload was sent to.
        reason: why it was not delivered (the dead letter's reason).
    """

    __module__ = "streams"
    retryable = False

    def __init__(self, message: str, token: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.token = token
        self.reason = reason

    @classmethod
    def refused(cls, token: str, reason: str) -> HookDeliveryError:
        """The error for the payload to ``token`` refused for ``reason`` (a subclass, see the class docstring)."""
        found = hook_refusal_error(reason)
        kind = cls if found is None else _REFUSED.get(found, cls)
        return kind(f"hook payload for {token} not delivered: {reason}", token, reason)


class HookNotFound(HookDeliveryError, HookNotFoundError):
    """A refused hook payload: no hook waits on the token, nor will one."""

    __module__ = "streams"


class HookAlreadyReceived(HookDeliveryError, HookAlreadyReceivedError):
    """A refused hook payload: the token already took its payload."""

    __module__ = "streams"


class HookExpired(HookDeliveryError, HookExpiredError):
    """A refused hook payload: the hook timed out."""

    __module__ = "streams"


class InvalidHookToken(HookDeliveryError, InvalidTokenError):
    """A refused hook payload: the token is malformed."""

    __module__ = "streams"


_REFUSED: dict[type[KflowError], type[HookDeliveryError]] = {
    HookNotFoundError: HookNotFound,
    HookAlreadyReceivedError: HookAlreadyReceived,
    HookExpiredError: HookExpired,
    InvalidTokenError: InvalidHookToken,
}


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What ``get_run``, ``list_runs`` and ``get_chain`` report about a run.

    Attributes:
        status: a ``RunStatus`` (a ``str`` enum: ``running``, ``completed``, ``failed``, ``cancelled`` or
            ``continued_as_new``).
        result, error: the outcome of a completed or failed run (None otherwise; a cancelled run has no error).
        started_at, finished_at: epoch ms (``finished_at`` None while running).
        next_run_id: the successor of a ``continued_as_new`` run (also ``continued_to``).
        args, kwargs: the arguments the run was started with.
        parent_run_id, parent_position: the parent of a child run and the call's position in it (a run started by
            a schedule has ``parent_run_id`` ``schedule:{id}``); None for a run started by a client.
        children: the run ids of the children it started, in call order.
        continued_from: the run it continues (continue-as-new), or None.
        idempotency_key: the key it was started with, or None.
    """

    run_id: str
    workflow_name: str
    status: RunStatus
    result: object = None
    error: ErrorInfo | None = None
    started_at: int = 0
    finished_at: int | None = None
    next_run_id: str | None = None
    args: tuple[object, ...] = ()
    kwargs: dict[str, object] = field(default_factory=dict)
    parent_run_id: str | None = None
    parent_position: int | None = None
    children: tuple[str, ...] = ()
    continued_from: str | None = None
    idempotency_key: str | None = None

    @property
    def continued_to(self) -> str | None:
        """The run that continues this one (continue-as-new): ``next_run_id``, pyworkflow's name."""
        return self.next_run_id


def outcome_of(finished: RunFinished) -> object:
    """The result of a completed run; raises a failed run's error (rebuilt), ``CancellationError`` for a
    cancelled one, ``KflowError`` for anything else (a ``continued_as_new`` link has no outcome of its own)."""
    if finished.status == RunStatus.COMPLETED:
        return finished.result
    if finished.status == RunStatus.FAILED and finished.error is not None:
        raise rebuild_exception(finished.error)
    if finished.status == RunStatus.CANCELLED:
        detail = f": {finished.error.message}" if finished.error is not None and finished.error.message else ""
        raise CancellationError(f"run {finished.run_id} was cancelled{detail}")
    raise KflowError(f"run {finished.run_id} finished with status {finished.status!r} and no usable outcome")


def run_info(run_id: str, events: list[HistoryEvent]) -> RunInfo | None:
    """The ``RunInfo`` of a run from its history (None when it has no ``WorkflowStarted``)."""
    started = next((e for e in events if isinstance(e, WorkflowStarted)), None)
    if started is None:
        return None
    children = sorted((e.position, e.child_run_id) for e in events if isinstance(e, ChildWorkflowStarted))
    info = RunInfo(
        run_id=run_id,
        workflow_name=started.workflow_name,
        status=RunStatus.RUNNING,
        started_at=started.timestamp,
        args=tuple(started.args.args),
        kwargs=dict(started.args.kwargs),
        parent_run_id=started.parent_run_id,
        parent_position=started.parent_position,
        children=tuple(child for _, child in children),
        continued_from=started.continued_from,
        idempotency_key=started.idempotency_key,
    )
    for event in reversed(events):
        status = status_of(event)
        if status is not None:
            return dataclasses.replace(
                info,
                status=status,
                finished_at=event.timestamp,
                result=getattr(event, "result", None),
                error=getattr(event, "error", None),
                next_run_id=getattr(event, "next_run_id", None),
            )
    return info
