"""What workflow code calls: sleep, hooks, child workflows, continue-as-new, shield."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Generic, NoReturn, TypeVar

from ._child_handle import ChildWorkflowHandle
from ._children import start_child
from ._core import RunCore
from ._definitions import workflow_definition
from ._durations import Duration, datetime_to_ms, parse_duration
from ._errors import CancellationError, KflowError
from ._loop import current_runtime
from ._pending import Mode, ParentClosePolicy
from ._records import CallArgs

M = TypeVar("M")


def _require_runtime(what: str) -> RunCore:
    core = current_runtime()
    if core is None:
        raise KflowError(f"{what} can only be used inside a running workflow")
    return core


async def sleep(duration: Duration | datetime, name: str | None = None) -> None:
    """Durably pause the workflow.

    Args:
        duration: ``"30s" "5m" "2h" "1d" "1w" "1h30m" "500ms"``, int/float seconds, a
            ``timedelta``, or a ``datetime`` to sleep until (naive means UTC).
        name: accepted from pyworkflow-engine (a label there); not recorded: a sleep is its position.

    Raises:
        InvalidDurationError: for a bad duration.
        CancellationError: the run was cancelled while sleeping.
        KflowError: called outside a workflow.
    """
    core = _require_runtime("sleep()")
    if isinstance(duration, datetime):
        fire_at = datetime_to_ms(duration)
    else:
        fire_at = core.now_ms + parse_duration(duration)
    await core.sleep_until(fire_at)


async def hook(
    name: str,
    timeout: Duration | None = None,
    on_created: Callable[[str], Awaitable[object]] | None = None,
    payload_schema: object = None,
) -> object:
    """Wait for an external payload sent to this hook's token.

    The token of a run's first ``hook(name)`` is ``"{run_id}:{name}"``; a name waited on again gets
    ``"{run_id}:{name}#2"``, ``#3``, ... (deterministic, so a sender can compute it; ``on_created``
    receives it too). A token takes one payload: a further one, or one after the timeout, is refused
    with the reason. A payload sent before the workflow reaches this call is kept (``HookReceived`` at
    position -1) and delivered here at once; no timeout timer is armed then.

    Args:
        name: hook name (part of the token).
        timeout: how long to wait; then ``HookExpiredError`` is raised.
        on_created: awaited with the token once the hook exists (e.g. a step that mails it).
        payload_schema: a pydantic model class; payloads that do not validate are rejected
            (the hook keeps waiting) and the workflow receives the model instance.

    Raises:
        HookExpiredError: the timeout elapsed first.
        CancellationError: the run was cancelled while waiting.
    """
    core = _require_runtime("hook()")
    timeout_ms = None if timeout is None else parse_duration(timeout)
    return await core.wait_hook(name, timeout_ms, on_created, payload_schema)


class TypedHook(Generic[M]):
    """A named hook whose payload is validated into a pydantic model (see ``define_hook``)."""

    def __init__(self, name: str, model: type[M]) -> None:
        self.name = name
        self.model = model

    async def __call__(
        self, *, timeout: Duration | None = None, on_created: Callable[[str], Awaitable[object]] | None = None
    ) -> M:
        """Wait for the payload; returns it as a ``model`` instance."""
        payload = await hook(self.name, timeout=timeout, on_created=on_created, payload_schema=self.model)
        assert isinstance(payload, self.model)
        return payload


def define_hook(name: str, model: type[M]) -> TypedHook[M]:
    """Define a reusable hook whose payload is validated as ``model``.

    Example: ``approval = define_hook("approval", Approval)``, then ``await approval()`` in a workflow.
    """
    return TypedHook(name, model)


async def start_child_workflow(
    fn: str | Callable[..., object],
    *args: object,
    wait_for_completion: bool = True,
    parent_close_policy: ParentClosePolicy = "cancel",
    **kwargs: object,
) -> object:
    """Start a child run (its own run id, partitioned by that id).

    Args:
        fn: the child workflow: a ``@workflow`` function or its registered name.
        wait_for_completion: True (default) waits and returns the child's result; False returns
            a ``ChildWorkflowHandle`` at once (``get_status()``, ``result(timeout)``, ``cancel()``, ...).
        parent_close_policy: ``"cancel"`` (default): when this run ends (completes, fails, is cancelled,
            continues as new) while the child still runs, the child is cancelled (its cleanup runs), and
            cancelling this run cancels it at once. ``"abandon"``: the child keeps running in both cases.
            Recorded with the start; a replay keeps the recorded policy.

    Raises:
        ChildWorkflowFailedError: (waiting) the child failed or was cancelled.
        CancellationError: this run was cancelled while waiting; the child is cancelled too (policy "cancel").
        ValueError: an unknown ``parent_close_policy``.
        KflowError: called outside a workflow, or ``fn`` is not a workflow.
    """
    core = _require_runtime("start_child_workflow()")
    if isinstance(fn, str):
        name = fn
    else:
        defn = workflow_definition(fn)
        if defn is None:
            raise KflowError(f"start_child_workflow(): {fn!r} is not decorated with @workflow")
        name = defn.name
    call = CallArgs(tuple(args), dict(kwargs))
    entry = await start_child(core, name, call, wait_for_completion, parent_close_policy)
    assert entry.child_run_id is not None
    if wait_for_completion:
        return entry.future.result()
    return ChildWorkflowHandle(entry.child_run_id, entry, core.run_id)


def continue_as_new(*args: object, **kwargs: object) -> NoReturn:
    """End this run (status ``continued_as_new``) and start a fresh run of the same workflow.

    Raises its signal when called, so both ``continue_as_new(x)`` and ``await continue_as_new(x)``
    work; the signal is a BaseException, so ``except Exception`` does not stop it.

    Raises:
        KflowError: called outside a workflow.
    """
    core = _require_runtime("continue_as_new()")
    raise core.request_continue(CallArgs(tuple(args), dict(kwargs)))


class shield:
    """``async with shield():`` defers cancellation until the block ends.

    A cancellation requested inside the block is delivered when the (outermost) shield
    exits: ``CancellationError`` is raised at the end of the block, after its cleanup ran.
    The deferral applies to the whole run while any shield is active.
    """

    def __init__(self) -> None:
        self._core: RunCore | None = None

    async def __aenter__(self) -> None:
        self._core = _require_runtime("shield()")
        self._core.shield_depth += 1

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        core = self._core
        assert core is not None
        core.shield_depth -= 1
        if core.mode is Mode.CLOSED or core.shield_depth or not core.cancel_requested or core.cancel_delivered:
            return
        core.deliver_cancellation()
        if exc is None:
            raise CancellationError(core.cancel_reason or "run cancelled", core.cancel_reason)
