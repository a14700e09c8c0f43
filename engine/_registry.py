"""Registry: the workflows and steps a host can run, and the schedules declared with them, collected
explicitly (no global state)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

from ._definitions import (
    DeclaredSchedule,
    StepDefinition,
    WorkflowDefinition,
    declared_schedule,
    step_definition,
    workflow_definition,
)
from ._errors import DuplicateNameError, RegistryError, UnknownStepError, UnknownWorkflowError
from ._payload_types import PayloadTypes


class Registry:
    """Workflows and steps by name, and the schedules declared with ``@scheduled_workflow`` by id.

    Args:
        items: functions decorated with ``@workflow``, ``@scheduled_workflow`` or ``@step``; anything else
            is skipped.

    Raises:
        DuplicateNameError: two different workflows (or two different steps) share a name, or two different
            schedules an id.
        RegistryError: a declared schedule names another workflow than its function's (``@workflow``
            applied over ``@scheduled_workflow``).
    """

    def __init__(self, items: Iterable[object] = ()) -> None:
        self._workflows: dict[str, WorkflowDefinition] = {}
        self._steps: dict[str, StepDefinition] = {}
        self._schedules: dict[str, DeclaredSchedule] = {}
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

    @property
    def payload_types(self) -> PayloadTypes:
        """The payload classes this registry allows: those registered with ``@payload_type`` and those defined in
        the modules of its workflows and steps (docs/payloads.md, "Which classes")."""
        functions = [d.fn for d in self._workflows.values()] + [d.fn for d in self._steps.values()]
        return PayloadTypes(str(module) for fn in functions if (module := getattr(fn, "__module__", None)))

    @property
    def schedules(self) -> Mapping[str, DeclaredSchedule]:
        """The schedules declared with ``@scheduled_workflow``, by schedule id, in the order the workflows
        were collected (read-only view)."""
        return dict(self._schedules)

    def _add(self, item: object) -> None:
        wf = workflow_definition(item)
        if wf is not None:
            _put(self._workflows, "workflow", wf.name, wf)
        st = step_definition(item)
        if st is not None:
            _put(self._steps, "step", st.name, st)
        declared = declared_schedule(item)
        if declared is not None:
            self._declare(declared, wf)

    def _declare(self, declared: DeclaredSchedule, wf: WorkflowDefinition | None) -> None:
        if wf is None or wf.name != declared.workflow_name:
            raise RegistryError(
                f"schedule {declared.schedule_id!r} starts workflow {declared.workflow_name!r}, but its function is "
                f"{'not a workflow' if wf is None else f'the workflow {wf.name!r}'}: give the options to "
                "@scheduled_workflow(name=...) instead of decorating it again"
            )
        existing = self._schedules.get(declared.schedule_id)
        # Registered workflows have distinct names, so an equal declaration is the same function reached twice.
        if existing is not None and existing != declared:
            raise DuplicateNameError(
                f"two different schedules are declared with id {declared.schedule_id!r}: "
                f"{_where(self._workflows[existing.workflow_name].fn)} and {_where(wf.fn)}; give one of them "
                "another id with @scheduled_workflow(schedule_id=...)"
            )
        self._schedules[declared.schedule_id] = declared


def _put(
    table: dict[str, WorkflowDefinition] | dict[str, StepDefinition],
    kind: str,
    name: str,
    defn: WorkflowDefinition | StepDefinition,
) -> None:
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
