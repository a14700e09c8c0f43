"""What a host needs to run workflows: the records on the wire, definitions and their registry, the replay
state machine (``Run``), step execution, the schedule state machine, clocks and the error codec.

``streams`` (Kafka) and ``storage`` (Cassandra) are built on this; workflow code never needs it.
"""

from __future__ import annotations

from ._clock import Clock, SystemClock
from ._definitions import DeclaredSchedule, StepDefinition, WorkflowDefinition
from ._durations import parse_duration
from ._failures import error_info, rebuild_exception
from ._records import (
    HISTORY_EVENT_TYPES,
    CallArgs,
    CancelRequested,
    CancelTimer,
    CancelWorkflow,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Command,
    ErrorInfo,
    ExecuteStep,
    ForgetRun,
    HistoryEvent,
    HookCreated,
    HookExpired,
    HookReceived,
    Input,
    ResumeHook,
    RunFinished,
    ScheduleCommand,
    ScheduleState,
    StartTimer,
    StartWorkflow,
    StepCompleted,
    StepContextSet,
    StepFailed,
    StepResult,
    StepScheduled,
    TerminalEvent,
    TimerElapsed,
    TimerFired,
    TimerScheduled,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
)
from ._run import Run, Transition
from ._scheduler import ScheduleDecision, decide_schedule, is_schedule_key, schedule_key
from ._status import RunStatus, status_of
from ._worker import execute_step

__all__ = [
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
    "RunStatus",
    "status_of",
    "Clock",
    "SystemClock",
    "parse_duration",
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
