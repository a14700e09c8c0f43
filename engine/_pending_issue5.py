"""API names whose behaviour lands with issue 5 (step context; child workflows are in ``_api``).

They exist so pyworkflow-style modules import unchanged; using them raises
``NotImplementedError`` with a clear message.
"""

from __future__ import annotations

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


async def set_step_context(ctx: StepContext) -> NoReturn:
    """Record the step context in history (issue 5)."""
    raise NotImplementedError(_LATER.format(what="set_step_context()"))


def get_step_context() -> NoReturn:
    """The current step context (issue 5)."""
    raise NotImplementedError(_LATER.format(what="get_step_context()"))


def has_step_context() -> NoReturn:
    """Whether a step context is set (issue 5)."""
    raise NotImplementedError(_LATER.format(what="has_step_context()"))
