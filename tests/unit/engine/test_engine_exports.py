"""Pins the engine's public surface: a change here is an API change."""

from __future__ import annotations

import engine

EXPECTED = {
    "workflow", "step", "sleep", "hook", "define_hook", "TypedHook", "continue_as_new", "shield",
    "start_child_workflow", "ChildWorkflowHandle", "StepContext", "set_step_context",
    "get_step_context", "has_step_context",
    "KflowError", "RetryableError", "FatalError", "CancellationError", "HookExpiredError",
    "ChildWorkflowFailedError", "ChildWorkflowDepthError", "NonDeterminismError", "StepFailedError", "StepTimeoutError",
    "WorkflowTimeoutError", "InvalidDurationError", "RegistryError", "UnknownWorkflowError",
    "UnknownStepError", "DuplicateNameError", "WorkflowSandboxError", "HistoryError", "RunClosedError",
    "EventLimitExceededError", "ScheduleSpecError",
    "StepDefinition", "WorkflowDefinition", "Registry", "RetryPolicy", "RetryDelay", "Duration",
    "parse_duration", "EventLimits",
    "CallArgs", "ErrorInfo", "StartWorkflow", "CancelWorkflow", "ResumeHook", "StepResult",
    "TimerFired", "RunFinished", "ForgetRun", "ScheduleCommand", "ScheduleState", "ExecuteStep", "StartTimer",
    "CancelTimer", "WorkflowStarted",
    "StepScheduled", "StepCompleted", "StepFailed", "TimerScheduled", "TimerElapsed", "HookCreated",
    "HookReceived", "HookExpired", "ChildWorkflowStarted", "ChildWorkflowCompleted",
    "ChildWorkflowFailed", "StepContextSet", "CancelRequested", "WorkflowCompleted", "WorkflowFailed",
    "WorkflowCancelled", "WorkflowContinuedAsNew", "HistoryEvent", "Input", "Command", "TerminalEvent",
    "HISTORY_EVENT_TYPES",
    "scheduled_workflow", "DeclaredSchedule", "ScheduleSpec", "DEFAULT_CATCHUP_WINDOW", "CalendarSpec", "OverlapPolicy",
    "ScheduleError",
    "ScheduleDecision", "decide_schedule",
    "schedule_key", "is_schedule_key", "fire_run_id", "trigger_run_id",
    "Run", "Transition", "execute_step", "error_info", "rebuild_exception",
    "Clock", "SystemClock", "FakeClock", "InMemoryDriver",
}


def test_all_is_pinned_and_resolvable() -> None:
    assert set(engine.__all__) == EXPECTED
    assert len(engine.__all__) == len(EXPECTED)
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_every_error_derives_from_one_root_and_has_a_stable_wire_name() -> None:
    errors = [getattr(engine, n) for n in engine.__all__ if n.endswith("Error")]
    for cls in errors:
        assert issubclass(cls, engine.KflowError)
        assert cls.__module__ == "engine"
        assert isinstance(cls.retryable, bool)
    assert engine.FatalError.retryable is False and engine.RetryableError.retryable is True


def test_history_event_types_match_docs_records() -> None:
    assert [cls.__name__ for cls in engine.HISTORY_EVENT_TYPES] == [
        "WorkflowStarted", "StepScheduled", "StepCompleted", "StepFailed", "TimerScheduled",
        "TimerElapsed", "HookCreated", "HookReceived", "HookExpired", "ChildWorkflowStarted",
        "ChildWorkflowCompleted", "ChildWorkflowFailed", "StepContextSet", "CancelRequested",
        "WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled", "WorkflowContinuedAsNew"]
