"""Pins the engine's public surface: a change here is an API change."""

from __future__ import annotations

import types

import pytest

import engine
from engine import runtime, testing

AUTHORING = {
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
    "scheduled_workflow",
    "ScheduleSpec",
    "CalendarSpec",
    "OverlapPolicy",
    "DEFAULT_CATCHUP_WINDOW",
    "fire_run_id",
    "trigger_run_id",
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
}

RUNTIME = {
    "ContinueAsNewSignal",
    "Unwind",
    "datetime_to_ms",
    "step_definition",
    "workflow_definition",
    "declared_schedule",
    "MAX_CHILD_DEPTH",
    "UnresolvedStepContext",
    "context_from_wire",
    "StepDefinition",
    "WorkflowDefinition",
    "DeclaredSchedule",
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
    "ScheduleDecision",
    "decide_schedule",
    "schedule_key",
    "is_schedule_key",
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
}

TESTING = {"InMemoryDriver", "FakeClock"}


@pytest.mark.parametrize(
    ("module", "expected"),
    [(engine, AUTHORING), (runtime, RUNTIME), (testing, TESTING)],
    ids=["engine", "engine.runtime", "engine.testing"],
)
def test_each_face_is_pinned_and_resolvable(module: types.ModuleType, expected: set[str]) -> None:
    assert set(module.__all__) == expected
    assert len(module.__all__) == len(expected)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_authoring_face_holds_no_host_internals() -> None:
    assert not {"Run", "Transition", "InMemoryDriver", "execute_step", "decide_schedule"} & set(engine.__all__)
    assert not [n for n in engine.__all__ if n in RUNTIME - {"RunStatus"}]


def test_every_error_derives_from_one_root_and_has_a_stable_wire_name() -> None:
    errors = [getattr(engine, n) for n in engine.__all__ if n.endswith("Error")]
    for cls in errors:
        assert issubclass(cls, engine.KflowError)
        assert cls.__module__ == "engine"
        assert isinstance(cls.retryable, bool)
    assert engine.FatalError.retryable is False and engine.RetryableError.retryable is True


def test_history_event_types_match_docs_records() -> None:
    assert [cls.__name__ for cls in runtime.HISTORY_EVENT_TYPES] == [
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
    ]
