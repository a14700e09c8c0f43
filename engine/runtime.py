"""What a host needs to run workflows: the records on the wire, definitions and their registry, the replay
state machine (``Run``), step execution, the schedule state machine, clocks and the error codec.

``streams`` (Kafka) and ``storage`` (Cassandra) are built on this; workflow code never needs it.
"""

from __future__ import annotations

from ._clock import Clock, SystemClock
from ._context import UnresolvedStepContext, context_from_wire
from ._definitions import (
    DeclaredSchedule,
    StepDefinition,
    WorkflowDefinition,
    declared_schedule,
    step_definition,
    workflow_definition,
)
from ._durations import datetime_to_ms, parse_duration
from ._errors import ContinueAsNewSignal, Unwind
from ._events import (
    HISTORY_EVENT_TYPES,
    CancelRequested,
    ChildWorkflowCancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    HistoryEvent,
    HookCreated,
    HookExpired,
    HookReceived,
    StepCompleted,
    StepContextSet,
    StepFailed,
    StepScheduled,
    TerminalEvent,
    TimerElapsed,
    TimerScheduled,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
)
from ._failures import error_info, rebuild_exception
from ._parity_errors import hook_refusal_error
from ._payload_types import PayloadCheck, PayloadTypes
from ._pending import MAX_CHILD_DEPTH
from ._records import (
    CallArgs,
    CancelTimer,
    CancelWorkflow,
    Command,
    ErrorInfo,
    ExecuteStep,
    ForgetRun,
    Input,
    ResumeHook,
    RunFinished,
    ScheduleCommand,
    ScheduleState,
    StartTimer,
    StartWorkflow,
    StepResult,
    TimerFired,
)
from ._run import Run, Transition
from ._schedule_fit import ScheduleDecision
from ._scheduler import decide_schedule, is_schedule_key, schedule_key
from ._status import RunStatus, status_of
from ._worker import execute_step

__all__ = [
    # internals the engine's own tests reach
    "ContinueAsNewSignal",
    "Unwind",
    "datetime_to_ms",
    "step_definition",
    "workflow_definition",
    "declared_schedule",
    "MAX_CHILD_DEPTH",
    "UnresolvedStepContext",
    "context_from_wire",
    # definitions
    "StepDefinition",
    "WorkflowDefinition",
    "DeclaredSchedule",
    # running
    "Run",
    "Transition",
    "execute_step",
    "error_info",
    "rebuild_exception",
    "hook_refusal_error",
    "RunStatus",
    "status_of",
    "Clock",
    "SystemClock",
    "parse_duration",
    "PayloadTypes",
    "PayloadCheck",
    # schedules
    "ScheduleDecision",
    "decide_schedule",
    "schedule_key",
    "is_schedule_key",
    # records: inputs and commands
    "CallArgs",
    "ErrorInfo",
    "StartWorkflow",
    "CancelWorkflow",
    "ResumeHook",
    "StepResult",
    "TimerFired",
    "RunFinished",
    "ForgetRun",
    "ScheduleCommand",
    "ScheduleState",
    "ExecuteStep",
    "StartTimer",
    "CancelTimer",
    "Input",
    "Command",
    # records: history events
    "WorkflowStarted",
    "StepScheduled",
    "StepCompleted",
    "StepFailed",
    "TimerScheduled",
    "TimerElapsed",
    "HookCreated",
    "HookReceived",
    "HookExpired",
    "ChildWorkflowStarted",
    "ChildWorkflowCompleted",
    "ChildWorkflowFailed",
    "ChildWorkflowCancelRequested",
    "StepContextSet",
    "CancelRequested",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowCancelled",
    "WorkflowContinuedAsNew",
    "HistoryEvent",
    "TerminalEvent",
    "HISTORY_EVENT_TYPES",
]
