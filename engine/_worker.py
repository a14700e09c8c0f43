"""Running one step attempt: shared by the real step worker and the in-memory test driver."""

from __future__ import annotations

import asyncio
import inspect

from ._clock import Clock
from ._context import step_context_scope
from ._definitions import StepDefinition
from ._errors import PoisonCodeError, StepTimeoutError
from ._failures import describe, error_info
from ._payload_types import PayloadCheck
from ._records import ErrorInfo, ExecuteStep, StepResult
from ._registry import Registry
from ._step_info import step_info_scope


async def execute_step(
    registry: Registry,
    cmd: ExecuteStep,
    clock: Clock,
    *,
    worker: str = "local",
    payload_check: PayloadCheck | None = None,
) -> StepResult:
    """Run one attempt of ``cmd``'s step and report it; never raises for step errors.

    The step runs under ``cmd.timeout_ms`` when set (exceeding it gives a retryable
    ``StepTimeoutError``). Every Exception becomes an ``ErrorInfo`` (including an unknown
    step name: a non-retryable ``UnknownStepError``); so does a ``SystemExit``, ``KeyboardInterrupt``
    or other BaseException, and an ``asyncio.CancelledError`` while the calling task is not being
    cancelled, as a non-retryable ``PoisonCodeError`` naming the step. Only a real cancellation of
    the calling task (``Task.cancelling()``) propagates. Synchronous step functions run in a
    thread so they do not block the worker's loop. ``cmd.context`` (the run's step context)
    is readable through ``get_step_context()`` during the call; ``set_step_context`` raises there.
    ``get_step_info()`` returns the call's run id, position, attempt and idempotency key. A
    ``RetryableError(retry_after=<datetime>)`` becomes the delay from the attempt's end to that time.
    A result ``payload_check`` refuses (see ``Run.start``) fails the attempt, not retried: a retry would
    return a value of the same kind.
    """
    started_at = clock.now_ms()
    try:
        defn = registry.step(cmd.step_name)
        with step_context_scope(cmd.context), step_info_scope(cmd):
            result = await _run_with_timeout(defn, cmd)
    except Exception as exc:  # the worker reports every step failure instead of raising
        ended = clock.now_ms()
        return _failed(cmd, error_info(exc, now_ms=ended), worker, started_at, clock, ended)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the worker itself is being cancelled (shutdown): not the step's doing
        what = "asyncio.CancelledError although the worker did not cancel it"
        return _failed(cmd, error_info(_poison(cmd, what, exc)), worker, started_at, clock)
    except GeneratorExit:
        raise  # this coroutine is being closed
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, …: they must not stop the worker
        what = f"{describe(exc)}, which would stop the worker"
        return _failed(cmd, error_info(_poison(cmd, what, exc)), worker, started_at, clock)
    if payload_check is not None:
        try:
            payload_check(result, "result")
        except Exception as exc:  # a PayloadError, or user code the check runs (a pydantic serializer)
            return _failed(cmd, unsendable_result(cmd.step_name, exc), worker, started_at, clock)
    return StepResult(
        run_id=cmd.run_id,
        position=cmd.position,
        attempt=cmd.attempt,
        ok=True,
        result=result,
        worker=worker,
        started_at=started_at,
        finished_at=clock.now_ms(),
    )


def _failed(
    cmd: ExecuteStep, error: ErrorInfo, worker: str, started_at: int, clock: Clock, ended: int | None = None
) -> StepResult:
    return StepResult(
        run_id=cmd.run_id,
        position=cmd.position,
        attempt=cmd.attempt,
        ok=False,
        error=error,
        worker=worker,
        started_at=started_at,
        finished_at=clock.now_ms() if ended is None else ended,
    )


def unsendable_result(step_name: str, exc: BaseException) -> ErrorInfo:
    """The non-retryable error of a step attempt whose result cannot be encoded (``exc`` says why, with the path)."""
    info = error_info(exc, with_traceback=False)
    message = f"the result of step {step_name!r} cannot be encoded: {info.message}"
    return ErrorInfo(type=info.type, message=message, retryable=False)


def _poison(cmd: ExecuteStep, what: str, cause: BaseException) -> PoisonCodeError:
    error = PoisonCodeError(
        f"step {cmd.step_name!r} (workflow {cmd.workflow_name!r} run {cmd.run_id}, position {cmd.position}, "
        f"attempt {cmd.attempt}) raised {what}; the attempt failed and is not retried"
    )
    error.__cause__ = cause
    return error


async def _run_with_timeout(defn: StepDefinition, cmd: ExecuteStep) -> object:
    if cmd.timeout_ms is None:
        return await _invoke(defn, cmd)
    timeout = asyncio.timeout(cmd.timeout_ms / 1000)
    try:
        async with timeout:
            return await _invoke(defn, cmd)
    except TimeoutError:
        if not timeout.expired():
            raise  # the step itself raised TimeoutError: report it as such
        raise StepTimeoutError(
            f"step {defn.name!r} (position {cmd.position}, attempt {cmd.attempt}) exceeded its "
            f"timeout of {cmd.timeout_ms} ms"
        ) from None


async def _invoke(defn: StepDefinition, cmd: ExecuteStep) -> object:
    fn = defn.fn
    if inspect.iscoroutinefunction(fn):
        return await fn(*cmd.args.args, **cmd.args.kwargs)
    result = await asyncio.to_thread(fn, *cmd.args.args, **cmd.args.kwargs)
    return await result if inspect.isawaitable(result) else result
