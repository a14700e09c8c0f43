"""kflow's error hierarchy: one root, retryability as a class attribute.

The public classes report ``__module__ == "engine"`` so the qualified type name
written into history (``ErrorInfo.type``, e.g. ``"engine.FatalError"``) stays
stable when private modules are reorganised.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class KflowError(Exception):
    """Root of every error kflow raises.

    ``retryable`` is read by the step retry policy: a step raising an error
    whose class says ``retryable = False`` fails at once, without retries.
    """

    __module__ = "engine"
    retryable: bool = True


class RetryableError(KflowError):
    """A transient step failure that should be retried.

    Args:
        message: what went wrong.
        retry_after: when to try again, overriding the step's policy: a delay (seconds, a duration
            string such as ``"30s"``, a timedelta) or a ``datetime`` to retry at (naive = UTC; the
            delay is that time minus the end of the failed attempt; a time past retries at once).
        **metadata: free-form details kept on the error (``.metadata``), as in pyworkflow-engine.
    """

    __module__ = "engine"
    retryable = True

    def __init__(
        self,
        message: str = "",
        retry_after: int | float | str | timedelta | datetime | None = None,
        **metadata: object,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.metadata = metadata


class FatalError(KflowError):
    """A permanent failure: the step is not retried and the error reaches the workflow.

    ``**metadata``: free-form details kept on the error (``.metadata``), as in pyworkflow-engine.
    """

    __module__ = "engine"
    retryable = False

    def __init__(self, message: str = "", **metadata: object) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata


class CancellationError(KflowError):
    """Raised inside a workflow at its current await when the run is cancelled (``reason``: the cancel's)."""

    __module__ = "engine"
    retryable = False

    def __init__(self, message: str = "run cancelled", reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class HookExpiredError(KflowError):
    """Raised by ``await hook(...)`` when its timeout elapsed before a payload arrived."""

    __module__ = "engine"
    retryable = False


class ChildWorkflowError(KflowError):
    """Base of the errors about child workflows (pyworkflow-engine's ``ChildWorkflowError``)."""

    __module__ = "engine"
    retryable = False


class ChildWorkflowDepthError(ChildWorkflowError):
    """Raised by ``start_child_workflow`` when the child would nest deeper than ``MAX_CHILD_DEPTH``
    (exported as ``MaxNestingDepthError`` too)."""

    __module__ = "engine"
    retryable = False


class ChildWorkflowFailedError(ChildWorkflowError):
    """Raised in a parent workflow when a child run it waits for failed or was cancelled.

    Attributes:
        child_run_id: the child run the parent started.
        error_type: qualified class name of the child's error (``""`` when unknown).
    """

    __module__ = "engine"
    retryable = False

    def __init__(self, message: str, child_run_id: str | None = None, error_type: str = "") -> None:
        super().__init__(message)
        self.child_run_id = child_run_id
        self.error_type = error_type


class NonDeterminismError(KflowError):
    """The workflow code diverged from its recorded history.

    Attributes:
        position: the command position where code and history disagree.
        recorded: what the history holds at that position.
        new: what the code issued instead.
    """

    __module__ = "engine"
    retryable = False

    def __init__(self, message: str, position: int | None = None, recorded: str = "", new: str = "") -> None:
        super().__init__(message)
        self.position = position
        self.recorded = recorded
        self.new = new


class StepFailedError(KflowError):
    """What a workflow sees for a failed step whose original exception type cannot be rebuilt.

    Attributes:
        error_type: the qualified class name of the original exception.
        remote_traceback: the traceback text captured by the worker, if any.
    """

    __module__ = "engine"
    retryable = False

    def __init__(self, message: str, error_type: str = "", remote_traceback: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.remote_traceback = remote_traceback


class StepTimeoutError(KflowError):
    """A step ran longer than its ``timeout``; retried like any transient error."""

    __module__ = "engine"
    retryable = True


class WorkflowTimeoutError(KflowError):
    """A run exceeded its workflow's ``max_duration``."""

    __module__ = "engine"
    retryable = False


class EventLimitExceededError(FatalError):
    """A run's history reached its hard event limit (``EventLimits.hard``); the run failed (a ``FatalError``).

    Long-running workflows should ``continue_as_new`` before that to start a fresh history.
    """

    __module__ = "engine"
    retryable = False


class PoisonCodeError(KflowError):
    """Workflow or step code did something that would stop or hang the host; that run (or step) failed instead.

    Raised for code that raises ``SystemExit`` or ``KeyboardInterrupt``, an ``asyncio.CancelledError``
    nobody asked for (kflow cancels runs with ``CancellationError``), or another ``BaseException`` a
    step lets escape. The message names the workflow or step and what it did; the original exception
    is its ``__cause__`` (and in the recorded traceback). Never retried.
    """

    __module__ = "engine"
    retryable = False


class ActivationBudgetExceededError(PoisonCodeError):
    """One activation of a workflow ran more event-loop callbacks than its budget; the run failed.

    Typically a loop that never waits on kflow (``while True: await asyncio.sleep(0)``). The budget is
    ``EventLimits.activation_steps`` (default 1,000,000 callbacks per activation).
    """

    __module__ = "engine"


class InvalidDurationError(KflowError, ValueError):
    """A duration could not be parsed (bad string, negative, wrong type)."""

    __module__ = "engine"
    retryable = False


class RegistryError(KflowError, LookupError):
    """Root of registry errors (unknown or clashing names)."""

    __module__ = "engine"
    retryable = False


class UnknownWorkflowError(RegistryError):
    """No workflow with that name is registered."""

    __module__ = "engine"


class UnknownStepError(RegistryError):
    """No step with that name is registered."""

    __module__ = "engine"


class DuplicateNameError(RegistryError):
    """Two different workflows (or steps) were registered under one name."""

    __module__ = "engine"


class WorkflowSandboxError(KflowError):
    """Workflow code used something that is not deterministic (asyncio timers, I/O, threads)."""

    __module__ = "engine"
    retryable = False


class HistoryError(KflowError):
    """A history cannot be replayed: empty, not starting with WorkflowStarted, or seq gaps."""

    __module__ = "engine"
    retryable = False


class RunClosedError(KflowError):
    """A Run was used after ``close()``."""

    __module__ = "engine"
    retryable = False


class Unwind(BaseException):
    """Internal: unwinds workflow coroutines when a run is evicted, finished or diverged.

    Derives from BaseException so ``except Exception`` in workflow code cannot swallow it.
    """


class ContinueAsNewSignal(BaseException):
    """Internal: raised by ``continue_as_new``; ends the run and starts its successor.

    Derives from BaseException so ``except Exception`` in workflow code cannot swallow it.
    """


class ScheduleSpecError(KflowError, ValueError):
    """A schedule specification is invalid (the message names the field and the value)."""

    __module__ = "engine"
    retryable = False
