"""Registry: the workflows and steps a host can run, collected explicitly (no global state)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

from ._definitions import StepDefinition, WorkflowDefinition, step_definition, workflow_definition
from ._errors import DuplicateNameError, UnknownStepError, UnknownWorkflowError


class Registry:
    """Workflows and steps by name.

    Args:
        items: functions decorated with ``@workflow`` or ``@step``; anything else is skipped.

    Raises:
        DuplicateNameError: two different workflows (or two different steps) share a name.
    """

    def __init__(self, items: Iterable[object] = ()) -> None:
        self._workflows: dict[str, WorkflowDefinition] = {}
        self._steps: dict[str, StepDefinition] = {}
        for item in items:
            self._add(item)

    @classmethod
    def from_module(cls, module_name: str) -> Registry:
        """Collect the decorated workflows and steps that are attributes of ``module_name``."""
        return cls.from_modules([module_name])

    @classmethod
    def from_modules(cls, module_names: Iterable[str]) -> Registry:
        """Collect the decorated workflows and steps that are attributes of these modules.

        Raises:
            ModuleNotFoundError: a module cannot be imported.
            DuplicateNameError: a name is used by two different definitions.
        """
        items: list[object] = []
        for module_name in module_names:
            module = importlib.import_module(module_name)
            items.extend(vars(module).values())
        return cls(items)

    def workflow(self, name: str) -> WorkflowDefinition:
        """The workflow registered as ``name``.

        Raises:
            UnknownWorkflowError: nothing is registered under that name.
        """
        try:
            return self._workflows[name]
        except KeyError:
            raise UnknownWorkflowError(_unknown("workflow", name, self._workflows)) from None

    def step(self, name: str) -> StepDefinition:
        """The step registered as ``name``.

        Raises:
            UnknownStepError: nothing is registered under that name.
        """
        try:
            return self._steps[name]
        except KeyError:
            raise UnknownStepError(_unknown("step", name, self._steps)) from None

    def workflow_for(self, name_or_fn: str | Callable[..., object]) -> WorkflowDefinition:
        """The workflow for a name or a decorated function.

        Raises:
            UnknownWorkflowError: unknown name, or the function is not a registered workflow.
        """
        if isinstance(name_or_fn, str):
            return self.workflow(name_or_fn)
        defn = workflow_definition(name_or_fn)
        if defn is None:
            raise UnknownWorkflowError(f"{name_or_fn!r} is not decorated with @workflow")
        return self.workflow(defn.name)

    @property
    def workflows(self) -> Mapping[str, WorkflowDefinition]:
        """All workflows by name (read-only view)."""
        return dict(self._workflows)

    @property
    def steps(self) -> Mapping[str, StepDefinition]:
        """All steps by name (read-only view)."""
        return dict(self._steps)

    def _add(self, item: object) -> None:
        wf = workflow_definition(item)
        if wf is not None:
            _put(self._workflows, "workflow", wf.name, wf)
        st = step_definition(item)
        if st is not None:
            _put(self._steps, "step", st.name, st)


def _put(table: dict[str, WorkflowDefinition] | dict[str, StepDefinition], kind: str, name: str,
         defn: WorkflowDefinition | StepDefinition) -> None:
    existing = table.get(name)
    # The same function reached twice (re-exported by another module) is not a clash.
    if existing is not None and existing.fn is not defn.fn:
        raise DuplicateNameError(
            f"two different {kind}s are named {name!r}: {_where(existing.fn)} and {_where(defn.fn)}; "
            f"give one of them another name with @{kind}(name=...)"
        )
    table[name] = defn  # type: ignore[assignment]


def _where(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _unknown(kind: str, name: str, table: Mapping[str, object]) -> str:
    known = ", ".join(sorted(table)) or "none"
    return f"no {kind} named {name!r} is registered (known: {known})"
