"""A run's status, and the one mapping from the event that ends a run to the status it ends in."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from ._events import WorkflowCancelled, WorkflowCompleted, WorkflowContinuedAsNew, WorkflowFailed


class RunStatus(StrEnum):
    """Where a run is. A ``str``: it compares equal to its value and is written to the wire and to Cassandra
    as that value (``RunFinished.status``, the ``runs`` table)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CONTINUED_AS_NEW = "continued_as_new"

    @property
    def finished(self) -> bool:
        """True for every status but ``running``: the run has ended and its outcome is final."""
        return self is not RunStatus.RUNNING


_BY_EVENT: Final[dict[type, RunStatus]] = {
    WorkflowCompleted: RunStatus.COMPLETED,
    WorkflowFailed: RunStatus.FAILED,
    WorkflowCancelled: RunStatus.CANCELLED,
    WorkflowContinuedAsNew: RunStatus.CONTINUED_AS_NEW,
}


def status_of(event: object) -> RunStatus | None:
    """The status a run ends in with ``event`` (a terminal history event), None for any other event."""
    return _BY_EVENT.get(type(event))
