"""kflow engine: the pure core (decorators, records, replay state machine, retry policies).

No Kafka, Cassandra or wall clock here: hosts feed inputs with the time and persist what
comes out. Everything public is re-exported from this module.
"""

from __future__ import annotations

from ._api import (ChildWorkflowHandle, TypedHook, continue_as_new, define_hook, hook, shield, sleep,
                   start_child_workflow)
from ._clock import Clock, FakeClock, SystemClock
from ._definitions import (DeclaredSchedule, EventLimits, StepDefinition, WorkflowDefinition, scheduled_workflow,
                           step, workflow)
from ._durations import Duration, parse_duration
from ._errors import (CancellationError, ChildWorkflowDepthError, ChildWorkflowFailedError, DuplicateNameError,
                      EventLimitExceededError, FatalError, HistoryError, HookExpiredError,
                      InvalidDurationError, KflowError, NonDeterminismError, RegistryError,
                      RetryableError, RunClosedError, StepFailedError, StepTimeoutError,
                      UnknownStepError, UnknownWorkflowError, WorkflowSandboxError,
                      WorkflowTimeoutError)
from ._failures import error_info, rebuild_exception
from ._context import StepContext, get_step_context, has_step_context, set_step_context
from ._records import (HISTORY_EVENT_TYPES, CallArgs, CancelRequested, CancelTimer, CancelWorkflow,
                       ChildWorkflowCompleted, ChildWorkflowFailed, ChildWorkflowStarted, Command,
                       ErrorInfo, ExecuteStep, ForgetRun, HistoryEvent, HookCreated, HookExpired,
                       HookReceived, Input, ResumeHook, RunFinished, ScheduleCommand, ScheduleState,
                       StartTimer, StartWorkflow, StepCompleted,
                       StepContextSet, StepFailed, StepResult, StepScheduled, TerminalEvent,
                       TimerElapsed, TimerFired, TimerScheduled, WorkflowCancelled, WorkflowCompleted,
                       WorkflowContinuedAsNew, WorkflowFailed, WorkflowStarted)
from ._registry import Registry
from ._retry import RetryDelay, RetryPolicy
from ._run import Run, Transition
from ._scheduler import (ScheduleDecision, ScheduleError, decide_schedule, fire_run_id, is_schedule_key,
                         schedule_key, trigger_run_id)
from ._errors import ScheduleSpecError
from ._schedules import DEFAULT_CATCHUP_WINDOW, CalendarSpec, OverlapPolicy, ScheduleSpec
from ._testing import InMemoryDriver
from ._worker import execute_step

__all__ = [
    # authoring
    "workflow", "step", "sleep", "hook", "define_hook", "TypedHook", "continue_as_new", "shield",
    "start_child_workflow", "ChildWorkflowHandle", "StepContext", "set_step_context",
    "get_step_context", "has_step_context",
    # errors
    "KflowError", "RetryableError", "FatalError", "CancellationError", "HookExpiredError",
    "ChildWorkflowFailedError", "ChildWorkflowDepthError", "NonDeterminismError", "StepFailedError", "StepTimeoutError",
    "WorkflowTimeoutError", "InvalidDurationError", "RegistryError", "UnknownWorkflowError",
    "UnknownStepError", "DuplicateNameError", "WorkflowSandboxError", "HistoryError", "RunClosedError",
    "EventLimitExceededError", "ScheduleSpecError",
    # definitions, registry, policies, durations
    "StepDefinition", "WorkflowDefinition", "Registry", "RetryPolicy", "RetryDelay", "Duration",
    "parse_duration", "EventLimits",
    # records
    "CallArgs", "ErrorInfo", "StartWorkflow", "CancelWorkflow", "ResumeHook", "StepResult",
    "TimerFired", "RunFinished", "ForgetRun", "ScheduleCommand", "ScheduleState", "ExecuteStep",
    "StartTimer", "CancelTimer", "WorkflowStarted",
    "StepScheduled", "StepCompleted", "StepFailed", "TimerScheduled", "TimerElapsed", "HookCreated",
    "HookReceived", "HookExpired", "ChildWorkflowStarted", "ChildWorkflowCompleted",
    "ChildWorkflowFailed", "StepContextSet", "CancelRequested", "WorkflowCompleted", "WorkflowFailed",
    "WorkflowCancelled", "WorkflowContinuedAsNew", "HistoryEvent", "Input", "Command", "TerminalEvent",
    "HISTORY_EVENT_TYPES",
    # schedules
    "scheduled_workflow", "DeclaredSchedule", "ScheduleSpec", "DEFAULT_CATCHUP_WINDOW", "CalendarSpec", "OverlapPolicy",
    "ScheduleError",
    "ScheduleDecision", "decide_schedule",
    "schedule_key", "is_schedule_key", "fire_run_id", "trigger_run_id",
    # running
    "Run", "Transition", "execute_step", "error_info", "rebuild_exception",
    # test support
    "Clock", "SystemClock", "FakeClock", "InMemoryDriver",
]
