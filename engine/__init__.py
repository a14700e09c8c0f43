"""kflow engine: the authoring API for durable workflows, and their errors.

Workflow code imports from here: ``@workflow``, ``@step``, ``sleep``, hooks, children, continue-as-new,
step context, ``get_context()`` / ``get_step_info()``, schedules and the errors a workflow or a caller sees
(with pyworkflow-engine's names where they differ: docs/pyworkflow.md). What hosts need to run workflows
(records, the replay state machine, registries of definitions) is in ``engine.runtime``; what tests of
workflow code need (an in-memory driver, a fake clock) in ``engine.testing``. No Kafka, Cassandra or
wall clock in this package.
"""

from __future__ import annotations

from ._api import (
    TypedHook,
    continue_as_new,
    define_hook,
    hook,
    shield,
    sleep,
    start_child_workflow,
)
from ._child_handle import ChildWorkflowHandle
from ._context import StepContext, get_step_context, has_step_context, set_step_context
from ._definitions import EventLimits, scheduled_workflow, step, workflow
from ._durations import Duration
from ._errors import (
    ActivationBudgetExceededError,
    CancellationError,
    ChildWorkflowDepthError,
    ChildWorkflowError,
    ChildWorkflowFailedError,
    DuplicateNameError,
    EventLimitExceededError,
    FatalError,
    HistoryError,
    HookExpiredError,
    InvalidDurationError,
    KflowError,
    NonDeterminismError,
    PoisonCodeError,
    RegistryError,
    RetryableError,
    RunClosedError,
    ScheduleSpecError,
    StepFailedError,
    StepTimeoutError,
    UnknownStepError,
    UnknownWorkflowError,
    WorkflowSandboxError,
    WorkflowTimeoutError,
)
from ._parity_errors import (
    ConfigurationError,
    ContextError,
    HookAlreadyReceivedError,
    HookNotFoundError,
    InvalidTokenError,
    SuspensionSignal,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
)
from ._payload_types import payload_type, register_payload_types
from ._registry import Registry
from ._retry import RetryDelay, RetryPolicy
from ._scheduler import ScheduleError, fire_run_id, trigger_run_id
from ._schedules import DEFAULT_CATCHUP_WINDOW, CalendarSpec, OverlapPolicy, ScheduleSpec
from ._status import RunStatus
from ._step_info import StepInfo, get_step_info
from ._workflow_context import WorkflowContext, get_context, has_context

WorkflowError = KflowError
"""pyworkflow-engine's name of the root of its errors: here ``KflowError``, the root of every kflow error."""
MaxNestingDepthError = ChildWorkflowDepthError
"""pyworkflow-engine's name of ``ChildWorkflowDepthError`` (kflow nests children 10 levels deep, not 3)."""

__all__ = [
    # authoring
    "workflow",
    "step",
    "sleep",
    "hook",
    "define_hook",
    "TypedHook",
    "continue_as_new",
    "shield",
    "start_child_workflow",
    "ChildWorkflowHandle",
    "StepContext",
    "set_step_context",
    "get_step_context",
    "has_step_context",
    "get_context",
    "has_context",
    "WorkflowContext",
    "get_step_info",
    "StepInfo",
    "EventLimits",
    "RetryPolicy",
    "RetryDelay",
    "Duration",
    "Registry",
    "RunStatus",
    "payload_type",
    "register_payload_types",
    # schedules
    "scheduled_workflow",
    "ScheduleSpec",
    "CalendarSpec",
    "OverlapPolicy",
    "DEFAULT_CATCHUP_WINDOW",
    "fire_run_id",
    "trigger_run_id",
    # errors
    "KflowError",
    "WorkflowError",
    "RetryableError",
    "FatalError",
    "CancellationError",
    "HookExpiredError",
    "HookNotFoundError",
    "HookAlreadyReceivedError",
    "InvalidTokenError",
    "ChildWorkflowError",
    "ChildWorkflowFailedError",
    "ChildWorkflowDepthError",
    "MaxNestingDepthError",
    "WorkflowNotFoundError",
    "WorkflowAlreadyRunningError",
    "ContextError",
    "ConfigurationError",
    "SuspensionSignal",
    "NonDeterminismError",
    "StepFailedError",
    "StepTimeoutError",
    "WorkflowTimeoutError",
    "InvalidDurationError",
    "RegistryError",
    "UnknownWorkflowError",
    "UnknownStepError",
    "DuplicateNameError",
    "WorkflowSandboxError",
    "HistoryError",
    "RunClosedError",
    "EventLimitExceededError",
    "PoisonCodeError",
    "ActivationBudgetExceededError",
    "ScheduleError",
    "ScheduleSpecError",
]
