"""kflow engine: the authoring API for durable workflows, and their errors.

Workflow code imports from here: ``@workflow``, ``@step``, ``sleep``, hooks, children, continue-as-new,
step context, schedules and the errors a workflow or a caller sees. What hosts need to run workflows
(records, the replay state machine, registries of definitions) is in ``engine.runtime``; what tests of
workflow code need (an in-memory driver, a fake clock) in ``engine.testing``. No Kafka, Cassandra or
wall clock in this package.
"""

from __future__ import annotations

from ._api import (
    ChildWorkflowHandle,
    TypedHook,
    continue_as_new,
    define_hook,
    hook,
    shield,
    sleep,
    start_child_workflow,
)
from ._context import StepContext, get_step_context, has_step_context, set_step_context
from ._definitions import EventLimits, scheduled_workflow, step, workflow
from ._durations import Duration
from ._errors import (
    ActivationBudgetExceededError,
    CancellationError,
    ChildWorkflowDepthError,
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
from ._payload_types import payload_type, register_payload_types
from ._registry import Registry
from ._retry import RetryDelay, RetryPolicy
from ._scheduler import ScheduleError, fire_run_id, trigger_run_id
from ._schedules import DEFAULT_CATCHUP_WINDOW, CalendarSpec, OverlapPolicy, ScheduleSpec
from ._status import RunStatus

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
    "RetryableError",
    "FatalError",
    "CancellationError",
    "HookExpiredError",
    "ChildWorkflowFailedError",
    "ChildWorkflowDepthError",
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
