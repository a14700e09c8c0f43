"""Step context: a frozen pydantic model set by workflow code and read (only) by its steps.

In workflow code ``await set_step_context(ctx)`` takes the next position and records
``StepContextSet`` (no command to the host); it becomes the run's current context, and every
``ExecuteStep`` issued afterwards carries it in wire form ``{"type": "module.QualName",
"data": <model_dump(mode="json")>}``. On replay the code sets it again at the same position
(matched as the command kind ``"context"``), so the run's context is restored with the code.

In a step (``execute_step``) the wire form is rebuilt and exposed through a contextvar for the
duration of the call. The class is looked up in ``sys.modules`` by its qualified name, never
imported; when it cannot be found (module not loaded on the worker, or a class defined inside a
function) the step sees an ``UnresolvedStepContext``: a frozen ``StepContext`` whose fields are
the recorded data (attribute access works, the original class's methods and validation do not).

Not inherited by child workflows nor by a continue-as-new successor: each run sets its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from ._errors import FatalError, KflowError
from ._loop import current_runtime

C = TypeVar("C", bound="StepContext")

_TYPE_KEY = "type"
_DATA_KEY = "data"


class StepContext(BaseModel):
    """Base class for a workflow's step context: a frozen pydantic model.

    Subclass it (``class Ctx(StepContext): tenant: str``), set it in workflow code with
    ``await set_step_context(ctx)`` and read it in steps with ``get_step_context()``.
    Fields must be JSON-serialisable (the context travels with every step command).
    """

    model_config = ConfigDict(frozen=True)

    def with_updates(self: C, **changes: object) -> C:
        """A validated copy with ``changes`` applied (the model itself is immutable)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def to_dict(self) -> dict[str, object]:
        """The fields as a plain dict (``model_dump()``), as in pyworkflow-engine."""
        return self.model_dump()

    @classmethod
    def from_dict(cls: type[C], data: dict[str, object]) -> C:
        """A validated context from ``to_dict()``'s form (``model_validate``), as in pyworkflow-engine.

        Raises:
            pydantic.ValidationError: ``data`` does not fit the class.
        """
        return cls.model_validate(data)


class UnresolvedStepContext(StepContext):
    """What a step sees when the context's class is not loaded in the worker process:
    the recorded fields as read-only attributes."""

    model_config = ConfigDict(frozen=True, extra="allow")


# Set by execute_step for the duration of a step call.
_STEP_CONTEXT: ContextVar[StepContext | None] = ContextVar("kflow_step_context", default=None)
_IN_STEP: ContextVar[bool] = ContextVar("kflow_in_step", default=False)

_READ_ONLY = (
    "set_step_context() cannot be called inside a step: the step context is read-only "
    "in steps. Return data from the step and set the context in workflow code instead."
)
_NONE_SET = "no step context is set: call `await set_step_context(ctx)` in the workflow before the steps that read it"


def context_to_wire(ctx: StepContext) -> dict[str, object]:
    """The JSON-able form recorded in ``StepContextSet.context`` and ``ExecuteStep.context``."""
    cls = type(ctx)
    return {_TYPE_KEY: f"{cls.__module__}.{cls.__qualname__}", _DATA_KEY: ctx.model_dump(mode="json")}


def context_from_wire(wire: object) -> StepContext:
    """Rebuild a context from its wire form (see the module docstring for the fallback).

    Raises:
        KflowError: ``wire`` is not of the form ``{"type": str, "data": dict}``.
        pydantic.ValidationError: the data no longer validates against the class.
    """
    if (
        not isinstance(wire, dict)
        or not isinstance(wire.get(_TYPE_KEY), str)
        or not isinstance(wire.get(_DATA_KEY), dict)
    ):
        raise KflowError(f"malformed step context {wire!r}: expected {{'type': str, 'data': dict}}")
    cls = _find_class(wire[_TYPE_KEY])
    data = wire[_DATA_KEY]
    return (cls or UnresolvedStepContext).model_validate(data)


def _find_class(type_name: str) -> type[StepContext] | None:
    """The StepContext subclass named ``module.QualName`` among the loaded modules, or None."""
    parts = type_name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is None:
            continue
        obj: object = module
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, type) and issubclass(obj, StepContext):
            return obj
    return None


@contextmanager
def step_context_scope(wire: object) -> Iterator[None]:
    """Run a step call with its context (``ExecuteStep.context``) readable and read-only.

    Raises:
        as ``context_from_wire`` when ``wire`` is set.
    """
    ctx = None if wire is None else context_from_wire(wire)
    ctx_token = _STEP_CONTEXT.set(ctx)
    step_token = _IN_STEP.set(True)
    try:
        yield
    finally:
        _IN_STEP.reset(step_token)
        _STEP_CONTEXT.reset(ctx_token)


async def set_step_context(ctx: StepContext) -> None:
    """Make ``ctx`` the run's step context (recorded in history; later steps receive it).

    Raises:
        TypeError: ``ctx`` is not a StepContext, or not the workflow's ``context_class``.
        FatalError: called inside a step (the context is read-only there).
        KflowError: called outside a workflow.
    """
    if _IN_STEP.get():
        raise FatalError(_READ_ONLY)
    core = current_runtime()
    if core is None:
        raise KflowError("set_step_context() can only be used inside a running workflow")
    if not isinstance(ctx, StepContext):
        raise TypeError(f"set_step_context() expects a StepContext instance, got {type(ctx).__name__}")
    expected = core.workflow.context_class
    if expected is not None and not isinstance(ctx, expected):
        raise TypeError(
            f"workflow {core.workflow.name!r} declares context_class={expected.__qualname__}; "
            f"set_step_context() got {type(ctx).__qualname__}"
        )
    core.set_step_context(ctx, context_to_wire(ctx))


def get_step_context() -> StepContext:
    """The current step context: the run's (in workflow code) or the step's (in a step).

    Raises:
        KflowError: none is set (or called outside a workflow or step).
    """
    ctx = _current()
    if ctx is None:
        raise KflowError(_NONE_SET)
    return ctx


def has_step_context() -> bool:
    """Whether ``get_step_context()`` would return a context here."""
    return _current() is not None


def _current() -> StepContext | None:
    core = current_runtime()
    if core is not None:
        return core.step_context
    return _STEP_CONTEXT.get()
