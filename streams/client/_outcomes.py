"""What a client reports about a run: its ``RunInfo``, the outcome of its ``RunFinished`` (the result, or its
error raised), and the error of a hook payload that was not delivered."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine import CancellationError, KflowError, RunStatus
from engine.runtime import ErrorInfo, HistoryEvent, RunFinished, WorkflowStarted, rebuild_exception, status_of


class HookDeliveryError(KflowError):
    """A hook payload that cannot be delivered: no such run, the run has finished, the token does not
    belong to it, the hook's ``payload_schema`` rejected the payload, or the token is malformed.

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
        """The error for the payload to ``token`` refused for ``reason``."""
        return cls(f"hook payload for {token} not delivered: {reason}", token, reason)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What ``get_run`` reports: the run's ``RunStatus`` (a ``str`` enum: ``running``, ``completed``,
    ``failed``, ``cancelled`` or ``continued_as_new``); timestamps are epoch ms (``finished_at`` None while
    running)."""

    run_id: str
    workflow_name: str
    status: RunStatus
    result: object = None
    error: ErrorInfo | None = None
    started_at: int = 0
    finished_at: int | None = None
    next_run_id: str | None = None


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
    info = RunInfo(
        run_id=run_id, workflow_name=started.workflow_name, status=RunStatus.RUNNING, started_at=started.timestamp
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
