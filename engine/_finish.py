"""How a run ends: the outcome of its workflow code, and the events and commands that record it."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from ._children import cancel_on_close
from ._core import RunCore
from ._errors import (
    ActivationBudgetExceededError,
    CancellationError,
    ContinueAsNewSignal,
    PoisonCodeError,
    Unwind,
    WorkflowTimeoutError,
)
from ._events import TerminalEvent, WorkflowCancelled, WorkflowCompleted, WorkflowContinuedAsNew, WorkflowFailed
from ._failures import describe, error_info
from ._records import CallArgs, ErrorInfo, RunFinished, StartWorkflow
from ._status import RunStatus

_SUCCESSOR_NAMESPACE = uuid.UUID("6f1c3a52-6b1e-4c53-9d3e-0c6b2f8a7e41")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended (any ``RunStatus`` but ``running``)."""

    status: RunStatus
    result: object = None
    error: ErrorInfo | None = None
    reason: str | None = None
    next_run_id: str | None = None
    next_args: CallArgs | None = None


def successor_run_id(run_id: str) -> str:
    """Run id of the continue-as-new successor of ``run_id``.

    # Invariant: derived from the run id only (uuid5), so replay names the same successor.
    """
    return uuid.uuid5(_SUCCESSOR_NAMESPACE, f"{run_id}/continue_as_new").hex


def successor_run_ids(run_id: str) -> Iterator[str]:
    """The ids of the runs a run that continues as new again and again becomes, in order: ``successor_run_id``
    applied repeatedly (the same uuid5, computed with hashlib directly: about 1 µs a link)."""
    namespace, sha1 = _SUCCESSOR_NAMESPACE.bytes, hashlib.sha1
    while True:
        digest = bytearray(sha1(namespace + f"{run_id}/continue_as_new".encode()).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
        run_id = digest.hex()
        yield run_id


def outcome_of(core: RunCore) -> Outcome | None:
    """The run's outcome after an activation, or None while it is still running."""
    if core.timed_out:
        limit = core.workflow.max_duration_ms
        return failed(
            WorkflowTimeoutError(
                f"workflow {core.workflow.name!r} run {core.run_id} exceeded its max_duration ({limit} ms)"
            )
        )
    poison = poison_error(core)
    if poison is not None:
        return failed(poison)
    if core.continue_args is not None:
        return Outcome(
            RunStatus.CONTINUED_AS_NEW, next_run_id=successor_run_id(core.run_id), next_args=core.continue_args
        )
    main = core.main
    if main is None or not main.done():
        return None
    if main.cancelled():
        if core.cancel_requested:
            return Outcome(RunStatus.CANCELLED, reason=core.cancel_reason)
        # kflow cancels with CancellationError, never with Task.cancel(): nobody asked for this one.
        return failed(stray_cancellation(core, main))
    exc = main.exception()
    if exc is None:
        return completed(core, main.result())
    if isinstance(exc, (Unwind, ContinueAsNewSignal)):
        return None
    if isinstance(exc, CancellationError):
        return Outcome(RunStatus.CANCELLED, reason=core.cancel_reason if core.cancel_requested else str(exc))
    return failed(exc)


def completed(core: RunCore, result: object) -> Outcome:
    """The outcome of workflow code that returned ``result``: failed when the host's payload codec cannot carry
    it (the error names the path and the type), so no run ends with a result nobody can read."""
    try:
        core.check_payload(result, "result")
    except Exception as exc:  # a PayloadError; or user code the check runs (a pydantic serializer) failing
        return failed(exc)
    return Outcome(RunStatus.COMPLETED, result=result)


def poison_error(core: RunCore) -> PoisonCodeError | None:
    """The error for poison workflow code in the last activation, or None.

    Poison code: an activation that ran out of its callback budget, or code that raised SystemExit or
    KeyboardInterrupt (which would otherwise stop the host). Decided from the callbacks run, never
    from time, so replay reaches the same verdict.
    """
    loop, where = core.loop, f"workflow {core.workflow.name!r} run {core.run_id}"
    if loop.fatal is not None:
        error: PoisonCodeError = PoisonCodeError(
            f"{where} raised {describe(loop.fatal)} in its workflow code; SystemExit and KeyboardInterrupt "
            "fail the run instead of stopping the host"
        )
        error.__cause__ = loop.fatal
        return error
    if loop.exhausted:
        budget = core.limits.activation_steps
        return ActivationBudgetExceededError(
            f"{where}: one activation ran {budget:,} event-loop callbacks without waiting on kflow (a loop "
            "that never awaits a step, sleep or hook?); the workflow code was stopped. The budget is "
            f"EventLimits.activation_steps ({budget})"
        )
    return None


def stray_cancellation(core: RunCore, main: asyncio.Task[object]) -> PoisonCodeError:
    """The error for a run whose code ended with asyncio.CancelledError although no cancel was requested."""
    error = PoisonCodeError(
        f"workflow {core.workflow.name!r} run {core.run_id} ended with asyncio.CancelledError although no "
        "cancellation was requested (kflow cancels a run with engine.CancellationError); the run failed"
    )
    try:
        main.result()
    except asyncio.CancelledError as exc:
        error.__cause__ = exc
    return error


def failed(exc: BaseException) -> Outcome:
    """A failed outcome for ``exc``."""
    return Outcome(RunStatus.FAILED, error=error_info(exc))


def emit_ending(core: RunCore, outcome: Outcome) -> None:
    """Append the terminal event and queue the ending commands (live mode).

    Children still running under the parent close policy ``"cancel"`` are asked to cancel first, so
    the terminal event stays the last of the history.
    """
    cancel_on_close(core, outcome.status)
    core.emit(terminal_event(core, outcome))
    for timer_id in armed_timers(core):
        core.cancel_timer(timer_id)
    if outcome.next_run_id is not None and outcome.next_args is not None:
        started = core.started
        core.command(
            StartWorkflow(
                run_id=outcome.next_run_id,
                workflow_name=core.workflow.name,
                args=outcome.next_args,
                parent_run_id=started.parent_run_id,
                parent_position=started.parent_position,
                continued_from=core.run_id,
                requested_at=core.now_ms,
                depth=started.depth,
                chain_attempt=(started.chain_attempt or 1) + 1,
            )
        )
    core.command(run_finished(core, outcome))


def armed_timers(core: RunCore) -> list[str]:
    """Timer ids still armed (cancelled when the run ends), in position order."""
    timers = [
        e.timer_id
        for _, e in sorted(core.pending.items())
        if e.timer_id is not None and (e.kind != "step" or e.awaiting_retry)
    ]
    if core.deadline_timer is not None:
        timers.append(core.deadline_timer)
    return timers


def terminal_event(core: RunCore, outcome: Outcome) -> TerminalEvent:
    """The history event that ends the run."""
    meta = core.meta()
    if outcome.status == RunStatus.COMPLETED:
        return WorkflowCompleted(**meta, result=outcome.result)
    if outcome.status == RunStatus.CANCELLED:
        return WorkflowCancelled(**meta, reason=outcome.reason)
    if outcome.status == RunStatus.CONTINUED_AS_NEW:
        assert outcome.next_run_id is not None and outcome.next_args is not None
        return WorkflowContinuedAsNew(**meta, next_run_id=outcome.next_run_id, args=outcome.next_args)
    assert outcome.error is not None
    return WorkflowFailed(**meta, error=outcome.error)


def run_finished(core: RunCore, outcome: Outcome) -> RunFinished:
    """The completion record for the run."""
    started = core.started
    return RunFinished(
        run_id=core.run_id,
        workflow_name=core.workflow.name,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        next_run_id=outcome.next_run_id,
        parent_run_id=started.parent_run_id,
        parent_position=started.parent_position,
        started_at=started.timestamp,
        finished_at=core.now_ms,
    )


def outcome_of_event(event: TerminalEvent) -> Outcome:
    """The outcome a recorded terminal event stands for."""
    if isinstance(event, WorkflowCompleted):
        return Outcome(RunStatus.COMPLETED, result=event.result)
    if isinstance(event, WorkflowCancelled):
        return Outcome(RunStatus.CANCELLED, reason=event.reason)
    if isinstance(event, WorkflowContinuedAsNew):
        return Outcome(RunStatus.CONTINUED_AS_NEW, next_run_id=event.next_run_id, next_args=event.args)
    return Outcome(RunStatus.FAILED, error=event.error)
