"""Child workflows from the parent's side: starting one, asking one to cancel, and what the parent knows of it.

Everything here is decided from the parent's own history (a child's outcome reaches the parent as a recorded
ChildWorkflowCompleted / ChildWorkflowFailed), so a replay of the parent takes the same decisions.

A child is asked to cancel (``ChildWorkflowCancelRequested`` in the parent's history, a ``CancelWorkflow`` to the
child's inbox, ``CancelRequested`` with that reason in the child's) at most once, by the first of:

- ``handle.cancel()`` in the parent's code (a command with a position of its own);
- the parent's cancellation, delivered at its current await (children with policy ``"cancel"``);
- the parent's end (completed, failed, cancelled, continued as new): every child still running whose parent
  close policy is ``"cancel"``, in position order, recorded right before the parent's terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from ._durations import Duration, parse_duration
from ._errors import ChildWorkflowDepthError
from ._events import (
    ChildWorkflowCancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    HistoryEvent,
)
from ._pending import MAX_CHILD_DEPTH, PARENT_CLOSE_POLICIES, CommandKey, Mode, Pending, child_run_id
from ._records import CallArgs, CancelWorkflow, StartWorkflow
from ._status import RunStatus

if TYPE_CHECKING:
    from ._core import RunCore

CANCELLED_CHILD_ERROR = "engine.CancellationError"
"""``ChildWorkflowFailed.error.type`` of a child that ended cancelled."""


async def start_child(
    core: RunCore, name: str, args: CallArgs, wait_for_completion: bool, close_policy: str = "cancel"
) -> Pending:
    """Issue a child run; return its pending entry (its future resolves with the child's outcome).

    With ``wait_for_completion`` the entry's future is awaited here already. In replay the parent close
    policy the history recorded wins over the one the code passes now (the child was started under it).
    """
    if close_policy not in PARENT_CLOSE_POLICIES:
        raise ValueError(f"parent_close_policy must be 'cancel' or 'abandon', not {close_policy!r}")
    depth = core.started.depth + 1
    if depth > MAX_CHILD_DEPTH:
        # Invariant: decided from the recorded depth only, so replay raises at the same call.
        raise ChildWorkflowDepthError(
            f"start_child_workflow({name!r}) from run {core.run_id}: child workflows nest at most "
            f"{MAX_CHILD_DEPTH} levels deep and this run is at depth {core.started.depth}"
        )
    core.check_payload(args, "args")
    position = core.issue(CommandKey("child", name))
    if core.mode is Mode.REPLAY:
        close_policy = core.recorded[position].close_policy or "cancel"
    child = child_run_id(core.run_id, position)
    entry = Pending(
        position, "child", core.loop.create_future(), name, args=args, child_run_id=child, close_policy=close_policy
    )
    core.pending[position] = entry
    if not wait_for_completion:
        # Nobody may ever await a fire-and-forget child's outcome: retrieve it so asyncio
        # does not log "exception was never retrieved".
        entry.future.add_done_callback(lambda f: f.cancelled() or f.exception())
    if core.mode is Mode.LIVE:
        core.emit(
            ChildWorkflowStarted(
                **core.meta(),
                position=position,
                child_run_id=child,
                workflow_name=name,
                args=args,
                wait_for_completion=wait_for_completion,
                parent_close_policy=close_policy,
            )
        )
        core.command(
            StartWorkflow(
                run_id=child,
                workflow_name=name,
                args=args,
                parent_run_id=core.run_id,
                parent_position=position,
                requested_at=core.now_ms,
                depth=depth,
            )
        )
    if wait_for_completion:
        await entry.future
    return entry


def request_cancel(core: RunCore, entry: Pending, reason: str, command_position: int | None = None) -> None:
    """Ask the child of ``entry`` to cancel: record it (live mode) and queue its CancelWorkflow.

    The child keeps its entry: its RunFinished is still recorded when it arrives.
    """
    assert entry.child_run_id is not None
    entry.cancel_sent = True
    if core.mode is Mode.LIVE:
        core.emit(
            ChildWorkflowCancelRequested(
                **core.meta(),
                position=entry.position,
                child_run_id=entry.child_run_id,
                reason=reason,
                command_position=command_position,
            )
        )
    core.command(CancelWorkflow(run_id=entry.child_run_id, reason=reason, requested_at=core.now_ms))


def cancel_with_parent(core: RunCore, entry: Pending) -> None:
    """The parent's cancellation reached the await of child ``entry``: cancel the child unless it is abandoned
    (or was asked already)."""
    if entry.kind == "child" and entry.close_policy == "cancel" and not entry.cancel_sent:
        request_cancel(core, entry, f"parent run {core.run_id} cancelled: {core.cancel_reason or 'run cancelled'}")


def cancel_on_close(core: RunCore, status: str, skip: Collection[str] = ()) -> None:
    """(live, the run ends with ``status``) Ask every child still running whose policy is ``"cancel"`` to cancel.

    Still running means: started, and no ChildWorkflowCompleted / ChildWorkflowFailed recorded yet — a child
    whose RunFinished is on its way finds the request after its end, and its partition ignores it. ``skip``:
    run ids of children that were never started after all (the hard event limit dropped their start).
    """
    words = "continued as new" if status == RunStatus.CONTINUED_AS_NEW else str(status)
    for position in sorted(core.pending):
        entry = core.pending[position]
        if entry.kind != "child" or entry.close_policy != "cancel" or entry.cancel_sent:
            continue
        if entry.child_run_id not in skip:
            request_cancel(core, entry, f"parent run {core.run_id} {words}")


def adopt_children(core: RunCore, history: Sequence[HistoryEvent]) -> None:
    """Give a core that did not replay its code (it fails on a divergence) the children ``history`` shows running,
    so the close policy still reaches them."""
    running: dict[int, Pending] = {}
    for event in history:
        if isinstance(event, ChildWorkflowStarted):
            future = core.loop.create_future()
            future.cancel()  # nobody awaits it
            running[event.position] = Pending(
                event.position,
                "child",
                future,
                event.workflow_name,
                child_run_id=event.child_run_id,
                close_policy=event.parent_close_policy or "cancel",
            )
        elif isinstance(event, (ChildWorkflowCompleted, ChildWorkflowFailed)):
            running.pop(event.position, None)
        elif isinstance(event, ChildWorkflowCancelRequested) and event.position in running:
            running[event.position].cancel_sent = True
    core.pending.update(running)


def status_of_child(event: ChildWorkflowCompleted | ChildWorkflowFailed) -> RunStatus:
    """The status of a child as its parent recorded it."""
    if isinstance(event, ChildWorkflowCompleted):
        return RunStatus.COMPLETED
    return RunStatus.CANCELLED if event.error.type == CANCELLED_CHILD_ERROR else RunStatus.FAILED


# -- what a ChildWorkflowHandle does ----------------------------------------------------------


def cancel_child(core: RunCore, entry: Pending, reason: str | None) -> bool:
    """``handle.cancel()``: False when the parent's history has the child's end already; else ask it to cancel
    (a command at a position of its own; once: a child asked already is not asked again) and return True."""
    if entry.child_status is not None:
        return False
    if entry.cancel_sent:
        return True
    assert entry.child_run_id is not None
    position = core.issue(CommandKey("child_cancel", entry.child_run_id))
    request_cancel(core, entry, reason or f"cancelled by parent run {core.run_id}", command_position=position)
    return True


async def child_result(core: RunCore, entry: Pending, timeout: Duration | None) -> object:
    """``handle.result(timeout)``: the child's outcome; with a timeout, a durable timer races it and
    ``TimeoutError`` is raised when it fires first (the child keeps running; result() may be called again)."""
    future = entry.future
    timeout_ms = None if timeout is None else parse_duration(timeout)
    if timeout_ms is None or future.done():
        return await future
    position = core.issue(CommandKey("child_timeout", "child_timeout"))
    timer_id = f"child_timeout:{position}:1"
    timer = Pending(position, "child_timeout", core.loop.create_future(), entry.name, timer_id=timer_id)
    timer.future.add_done_callback(lambda f: f.cancelled() or f.exception())
    core.pending[position] = timer
    if core.mode is Mode.LIVE:
        core.start_timer(position, "child_timeout", timer_id, core.now_ms + timeout_ms)
    first: asyncio.Future[object] = core.loop.create_future()

    def wake(_: asyncio.Future[object]) -> None:
        if not first.done():
            first.set_result(None)

    future.add_done_callback(wake)
    timer.future.add_done_callback(wake)
    try:
        await first
    finally:
        future.remove_done_callback(wake)
        timer.future.remove_done_callback(wake)
    if future.done():
        if core.pending.pop(position, None) is not None:
            core.cancel_timer(timer_id)  # the child ended first: the timer is not needed any more
        return future.result()
    timer.future.result()  # the parent's cancellation (or teardown) raises here
    raise TimeoutError(
        f"child workflow {entry.name!r} run {entry.child_run_id} did not complete within {timeout_ms:,} ms "
        "(it keeps running)"
    )
