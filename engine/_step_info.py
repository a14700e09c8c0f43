"""``get_step_info()``: which run, step call and attempt the running step code is, set by ``execute_step``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ._parity_errors import ContextError
from ._records import ExecuteStep


@dataclass(frozen=True, slots=True)
class StepInfo:
    """The step attempt being executed.

    Attributes:
        run_id: the run that called the step.
        workflow_name: that run's workflow.
        step_name: the step's registered name.
        position: the call's position in the run (its identity: equal arguments, another call, another position).
        attempt: 1 for the first attempt, 2 for the first retry, …
        idempotency_key: ``"{run_id}:{position}"``: the same for every attempt and every redelivery of this call,
            and different for any other call: hand it to the services the step writes to, so a step that runs
            twice (a worker lost mid-step) does its effect once.
    """

    run_id: str
    workflow_name: str
    step_name: str
    position: int
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """``"{run_id}:{position}"`` (see the class docstring)."""
        return f"{self.run_id}:{self.position}"


_STEP_INFO: ContextVar[StepInfo | None] = ContextVar("kflow_step_info", default=None)


@contextmanager
def step_info_scope(cmd: ExecuteStep) -> Iterator[None]:
    """Make ``cmd``'s ``StepInfo`` what ``get_step_info()`` returns during the step call."""
    info = StepInfo(cmd.run_id, cmd.workflow_name, cmd.step_name, cmd.position, cmd.attempt)
    token = _STEP_INFO.set(info)
    try:
        yield
    finally:
        _STEP_INFO.reset(token)


def get_step_info() -> StepInfo:
    """The step attempt this code runs in (inside a ``@step`` executed by a step worker or ``InMemoryDriver``).

    Raises:
        ContextError: not inside a step run by kflow (workflow code, a step function called directly, other code).
    """
    info = _STEP_INFO.get()
    if info is None:
        raise ContextError(
            "get_step_info() is only available inside a @step run by kflow (a step worker or InMemoryDriver); "
            "in workflow code use get_context()"
        )
    return info
