"""API names whose behaviour lands with issue 5 (child workflows, step context).

They exist so pyworkflow-style modules import unchanged; using them raises
``NotImplementedError`` with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from pydantic import BaseModel, ConfigDict

_LATER = "{what} is not implemented yet in kflow (lands with issue 5)"


class StepContext(BaseModel):
    """Base class for a workflow's step context: a frozen pydantic model.

    Recording it in history (``set_step_context``) lands with issue 5.
    """

    model_config = ConfigDict(frozen=True)

    def with_updates(self, **changes: object) -> StepContext:
        """A copy with ``changes`` applied (the model itself is immutable)."""
        return self.model_copy(update=changes)


class ChildWorkflowHandle:
    """Handle to a child run started with ``wait_for_completion=False`` (issue 5)."""

    def __init__(self, child_run_id: str) -> None:
        self.child_run_id = child_run_id

    async def result(self) -> NoReturn:
        """Wait for the child's result (issue 5)."""
        raise NotImplementedError(_LATER.format(what="ChildWorkflowHandle.result()"))


async def start_child_workflow(fn: Callable[..., object], *args: object,
                               wait_for_completion: bool = True, **kwargs: object) -> NoReturn:
    """Start a child run (issue 5)."""
    raise NotImplementedError(_LATER.format(what="start_child_workflow()"))


async def set_step_context(ctx: StepContext) -> NoReturn:
    """Record the step context in history (issue 5)."""
    raise NotImplementedError(_LATER.format(what="set_step_context()"))


def get_step_context() -> NoReturn:
    """The current step context (issue 5)."""
    raise NotImplementedError(_LATER.format(what="get_step_context()"))


def has_step_context() -> NoReturn:
    """Whether a step context is set (issue 5)."""
    raise NotImplementedError(_LATER.format(what="has_step_context()"))
