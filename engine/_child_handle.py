"""ChildWorkflowHandle: what a parent holds of a child it started with ``wait_for_completion=False``."""

from __future__ import annotations

from ._children import cancel_child, child_result
from ._core import RunCore
from ._durations import Duration
from ._errors import KflowError
from ._loop import current_runtime
from ._pending import Pending
from ._status import RunStatus

_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class ChildWorkflowHandle:
    """Handle to a child run started with ``wait_for_completion=False``.

    Its methods are pyworkflow-engine's, made deterministic for replay: they are called inside the parent's
    workflow code, and what they report comes from the parent's own history (a child's end reaches the parent
    as a recorded ChildWorkflowCompleted / ChildWorkflowFailed), never from a query of the child, so a replay
    of the parent sees the same answers at the same points.

    Attributes:
        child_run_id: the child's run id (deterministic: derived from the parent run and position).
        child_id: the same id (pyworkflow's deterministic child identifier; kflow's run id is one already).
        child_workflow_name: the registered name of the child's workflow.
        parent_run_id: the run that started the child.
    """

    def __init__(self, child_run_id: str, entry: Pending | None = None, parent_run_id: str | None = None) -> None:
        self.child_run_id = child_run_id
        self.child_id = child_run_id
        self.child_workflow_name = entry.name if entry is not None else ""
        self.parent_run_id = parent_run_id
        self._entry = entry

    def _bind(self, what: str) -> tuple[RunCore, Pending]:
        core = current_runtime()
        if core is None:
            raise KflowError(f"ChildWorkflowHandle.{what}() can only be used inside a running workflow")
        entry = self._entry
        if entry is None or entry.future.get_loop() is not core.loop:
            raise KflowError(f"the handle of child run {self.child_run_id} does not belong to run {core.run_id}")
        return core, entry

    async def get_status(self) -> RunStatus:
        """The child's status as the parent's history records it: ``running`` until the child's end has been
        recorded, then ``completed``, ``failed`` or ``cancelled`` (a child that continues as new is ``running``
        until its chain ends). Resolves at once; poll it between durable waits (``sleep``, steps).

        Raises:
            KflowError: called outside the workflow that started the child.
        """
        _, entry = self._bind("get_status")
        return RunStatus(entry.child_status or RunStatus.RUNNING)

    async def is_running(self) -> bool:
        """True while the child's end is not recorded in the parent's history (see ``get_status``)."""
        return await self.get_status() == RunStatus.RUNNING

    async def is_terminal(self) -> bool:
        """True once the parent's history records the child completed, failed or was cancelled."""
        return await self.get_status() in _TERMINAL

    async def cancel(self, reason: str | None = None) -> bool:
        """Ask the child to cancel: recorded in the parent's history (``ChildWorkflowCancelRequested``), a
        ``CancelWorkflow`` goes to the child's inbox, and the child's history records ``CancelRequested`` with
        ``reason`` (default: ``"cancelled by parent run <id>"``). Does not wait for the child to end: its end
        arrives later (``get_status()`` turns ``cancelled``, ``result()`` raises ``ChildWorkflowFailedError``).

        Returns:
            False when the child's end is recorded already (nothing is sent), else True (also when it was
            asked to cancel before: it is not asked twice).

        Raises:
            KflowError: called outside the workflow that started the child.
        """
        core, entry = self._bind("cancel")
        return cancel_child(core, entry, reason)

    async def result(self, timeout: Duration | None = None) -> object:
        """Wait (durably) for the child's result.

        Args:
            timeout: how long to wait at most (``"30s"``, seconds as int/float, a ``timedelta``; None: no
                limit). A durable timer: it fires even if the parent's process restarts meanwhile.

        Raises:
            ChildWorkflowFailedError: the child failed or was cancelled.
            TimeoutError: ``timeout`` elapsed first; the child keeps running and ``result()`` may be called again.
            CancellationError: this run was cancelled while waiting.
            KflowError: the handle was not created by ``start_child_workflow`` in this run.
        """
        core, entry = self._bind("result")
        return await child_result(core, entry, timeout)

    def __repr__(self) -> str:
        name = self.child_workflow_name
        return f"ChildWorkflowHandle(child_run_id={self.child_run_id!r}, child_workflow_name={name!r})"
