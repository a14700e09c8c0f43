"""Running one step attempt: shared by the real step worker and the in-memory test driver."""

from __future__ import annotations

import asyncio
import inspect

from ._clock import Clock
from ._context import step_context_scope
from ._definitions import StepDefinition
from ._errors import StepTimeoutError
from ._failures import error_info
from ._records import ExecuteStep, StepResult
from ._registry import Registry


async def execute_step(registry: Registry, cmd: ExecuteStep, clock: Clock, *, worker: str = "local") -> StepResult:
    """Run one attempt of ``cmd``'s step and report it; never raises for step errors.

    The step runs under ``cmd.timeout_ms`` when set (exceeding it gives a retryable
    ``StepTimeoutError``). Every Exception becomes an ``ErrorInfo`` (including an unknown
    step name: a non-retryable ``UnknownStepError``). Synchronous step functions run in a
    thread so they do not block the worker's loop. ``cmd.context`` (the run's step context)
    is readable through ``get_step_context()`` during the call; ``set_step_context`` raises there.
    """
    started_at = clock.now_ms()
    try:
        defn = registry.step(cmd.step_name)
        with step_context_scope(cmd.context):
            result = await _run_with_timeout(defn, cmd)
    except Exception as exc:  # the worker reports every step failure instead of raising
        return StepResult(
            run_id=cmd.run_id,
            position=cmd.position,
            attempt=cmd.attempt,
            ok=False,
            error=error_info(exc),
            worker=worker,
            started_at=started_at,
            finished_at=clock.now_ms(),
        )
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
