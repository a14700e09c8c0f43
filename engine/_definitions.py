"""``@step``, ``@workflow`` and ``@scheduled_workflow``: attach a definition to the function; no global
registry."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec, TypeVar, cast, overload

from ._durations import Duration, parse_duration
from ._errors import ScheduleSpecError
from ._event_limits import EventLimits as EventLimits  # re-exported: its home before it moved
from ._loop import current_runtime
from ._records import CallArgs
from ._retry import RetryDelay, RetryPolicy
from ._scheduler import ScheduleError
from ._schedules import DEFAULT_CATCHUP_WINDOW, CalendarSpec, OverlapPolicy, ScheduleSpec

P = ParamSpec("P")
R = TypeVar("R")

_STEP_ATTR = "__kflow_step__"
_WORKFLOW_ATTR = "__kflow_workflow__"
_SCHEDULE_ATTR = "__kflow_schedule__"


@dataclass(frozen=True, slots=True)
class StepDefinition:
    """What ``@step`` recorded: the name, the undecorated function, retry policy and timeout, whether its first
    attempt may run inside the orchestrator (``local``), and the ``metadata`` it was given (kept for the
    application: kflow does not read it)."""

    name: str
    fn: Callable[..., object]
    policy: RetryPolicy
    timeout_ms: int | None
    metadata: dict[str, object] = field(default_factory=dict, compare=False)
    local: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """What ``@workflow`` recorded: the name, the function and its options."""

    name: str
    fn: Callable[..., Awaitable[object]]
    max_duration_ms: int | None = None
    tags: tuple[str, ...] = ()
    durable: bool = True
    context_class: type | None = field(default=None)
    event_limits: EventLimits | None = None  # None: the host's limits (default EventLimits())
    # Accepted from pyworkflow-engine and kept; no effect: a Kafka redelivery is kflow's recovery.
    recover_on_worker_loss: bool | None = None
    max_recovery_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class DeclaredSchedule:
    """What ``@scheduled_workflow`` declared: the schedule ``client.schedules.activate`` makes exist.

    Attributes:
        schedule_id: the schedule's id (default: the workflow's name).
        workflow_name: the workflow each fire starts.
        spec: when it fires.
        overlap: what a fire does while a run the schedule started is still running.
        args: the arguments of every run it starts.
    """

    schedule_id: str
    workflow_name: str
    spec: ScheduleSpec
    overlap: OverlapPolicy
    args: CallArgs


@overload
def step(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[object, None, R]]: ...
@overload
def step(
    *,
    name: str | None = None,
    max_retries: int = 3,
    retry_delay: RetryDelay = "exponential",
    timeout: Duration | None = "60s",
    max_retry_delay: Duration | None = None,
    retry_jitter: bool = False,
    metadata: Mapping[str, object] | None = None,
    local: bool = False,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[object, None, R]]]: ...


def step(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int = 3,
    retry_delay: RetryDelay = "exponential",
    timeout: Duration | None = "60s",
    max_retry_delay: Duration | None = None,
    retry_jitter: bool = False,
    metadata: Mapping[str, object] | None = None,
    local: bool = False,
) -> object:
    """Declare a step: a retryable unit of work that runs on a step worker.

    Usable bare (``@step``) or with options. Inside a workflow, calling the step issues a
    command (the call's identity is its position in the workflow); outside a workflow it
    simply runs the function.

    Args:
        name: registry name (default: the function's ``__name__``).
        max_retries: retries after the first attempt.
        retry_delay: ``"exponential"`` (1s, 2s, 4s... capped by ``max_retry_delay``), ``"fixed"``
            (1s), a duration, or a list of per-retry seconds (last one repeated).
        timeout: per-attempt limit enforced by the worker (``None``: no limit).
        max_retry_delay: the longest the policy waits between attempts (any duration; default:
            300 s for ``"exponential"``, no cap for the others). A ``RetryableError.retry_after`` is
            not capped.
        retry_jitter: "full jitter": wait a fraction of the (capped) delay between 0 and all of it,
            fixed by (run id, position, attempt), so replays and redeliveries wait the same.
        metadata: free-form data kept on the definition (``StepDefinition.metadata``), accepted
            from pyworkflow-engine; kflow does not use it.
        local: a *local step*: its first attempt runs inside the orchestrator that owns the run, its
            result recorded in the orchestrator's own transaction (no ``.tasks`` hop). For short,
            idempotent work; a local attempt over the local budget (1 s by default), retries, and what
            does not fit in a transaction's group of local steps go to the step workers (docs/api.md,
            "Local steps").

    Raises:
        InvalidDurationError: for a bad ``retry_delay``, ``timeout`` or ``max_retry_delay``.
        TypeError: ``retry_jitter`` or ``local`` is not a bool, ``metadata`` not a mapping.
    """
    policy = RetryPolicy.from_spec(max_retries, retry_delay, max_retry_delay, retry_jitter)
    timeout_ms = None if timeout is None else parse_duration(timeout)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    step_metadata = dict(metadata or {})
    if not isinstance(local, bool):
        raise TypeError(f"local must be a bool, got {type(local).__name__}")

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[object, None, R]]:
        defn = StepDefinition(
            name=name or func.__name__,
            fn=func,
            policy=policy,
            timeout_ms=timeout_ms,
            metadata=step_metadata,
            local=local,
        )

        @functools.wraps(func)
        async def call_step(*args: P.args, **kwargs: P.kwargs) -> R:
            runtime = current_runtime()
            if runtime is None:
                return await func(*args, **kwargs)
            return cast(R, await runtime.call_step(defn, CallArgs(tuple(args), dict(kwargs))))

        setattr(call_step, _STEP_ATTR, defn)
        return call_step

    return decorate if fn is None else decorate(fn)


@overload
def workflow(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    max_duration: Duration | None = None,
    tags: Sequence[str] | None = None,
    durable: bool = True,
    context_class: type | None = None,
    event_limits: EventLimits | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def workflow(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    max_duration: Duration | None = None,
    tags: Sequence[str] | None = None,
    durable: bool = True,
    context_class: type | None = None,
    event_limits: EventLimits | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
) -> object:
    """Declare a workflow: deterministic orchestration code between awaits.

    Usable bare (``@workflow``) or with options. The function is returned unchanged apart
    from an attached ``WorkflowDefinition`` (collect it with ``Registry``).

    Args:
        name: registry name (default: the function's ``__name__``).
        max_duration: the run fails with ``WorkflowTimeoutError`` once this has elapsed.
        tags: free-form labels (accepted as in pyworkflow).
        durable: accepted for pyworkflow compatibility; kflow runs are always durable.
        context_class: the ``StepContext`` subclass this workflow uses: ``set_step_context``
            raises ``TypeError`` for anything else.
        event_limits: this workflow's history limits and activation budget; they win over the host's
            (``Run.start/replay/recover(limits=...)``, ``InMemoryDriver(event_limits=...)``).
        recover_on_worker_loss, max_recovery_attempts: accepted from pyworkflow-engine and kept on the
            definition, no effect: a run never depends on one process (a partition moves to another
            orchestrator and replays; a step whose worker died is redelivered to another worker).

    Raises:
        InvalidDurationError: for a bad ``max_duration``.
        TypeError: ``event_limits`` is not an ``EventLimits``, ``recover_on_worker_loss`` not a bool,
            ``max_recovery_attempts`` not an int.
        ValueError: ``max_recovery_attempts`` is negative.
    """
    max_duration_ms = None if max_duration is None else parse_duration(max_duration)
    if event_limits is not None and not isinstance(event_limits, EventLimits):
        raise TypeError(f"event_limits must be an EventLimits, got {type(event_limits).__name__}")
    _check_recovery(recover_on_worker_loss, max_recovery_attempts)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        defn = WorkflowDefinition(
            name=name or func.__name__,
            fn=func,
            max_duration_ms=max_duration_ms,
            tags=tuple(tags or ()),
            durable=durable,
            context_class=context_class,
            event_limits=event_limits,
            recover_on_worker_loss=recover_on_worker_loss,
            max_recovery_attempts=max_recovery_attempts,
        )
        setattr(func, _WORKFLOW_ATTR, defn)
        return func

    return decorate if fn is None else decorate(fn)


def scheduled_workflow(
    *,
    cron: str | None = None,
    interval: Duration | None = None,
    calendar: Sequence[CalendarSpec] | None = None,
    timezone: str = "UTC",
    start_at: int | datetime | None = None,
    end_at: int | datetime | None = None,
    jitter: Duration | None = None,
    catchup_window: Duration = DEFAULT_CATCHUP_WINDOW,
    overlap_policy: OverlapPolicy | str = OverlapPolicy.SKIP,
    schedule_id: str | None = None,
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    name: str | None = None,
    max_duration: Duration | None = None,
    tags: Sequence[str] | None = None,
    durable: bool = True,
    context_class: type | None = None,
    event_limits: EventLimits | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Declare a workflow together with the schedule that starts it (pyworkflow's ``@scheduled_workflow``).

    The function becomes a workflow exactly as with ``@workflow(name=..., max_duration=..., ...)`` (it
    can be started like any other) and carries a ``DeclaredSchedule``, listed by ``Registry.schedules``.
    Nothing is scheduled by decorating: ``client.schedules.activate`` (or ``kflow schedules activate``, or
    ``kflow processor --activate-schedules``) creates the schedule, or brings it in line with the code.

    Args:
        cron, interval, calendar, timezone, start_at, end_at, jitter, catchup_window: the ``ScheduleSpec``
            (exactly one of cron, interval, calendar).
        overlap_policy: an ``OverlapPolicy`` or its value (default ``skip``).
        schedule_id: the schedule's id (default: the workflow's name).
        args, kwargs: the arguments of every run the schedule starts.
        name, max_duration, tags, durable, context_class, event_limits, recover_on_worker_loss,
            max_recovery_attempts: as for ``@workflow``.

    Raises:
        ScheduleSpecError: an invalid spec (bad cron, unknown time zone, none or two of cron/interval/calendar).
        ScheduleError: an unknown overlap policy, an empty schedule id, ``args`` not a list or tuple,
            ``kwargs`` not a mapping with string keys.
        InvalidDurationError, TypeError: bad workflow options, as for ``@workflow``.

        All of them when decorating (at import); the schedule errors name the function.
    """

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        where = f"@scheduled_workflow on {_qualified(func)}"
        try:
            # ScheduleSpec also takes a list of entries and aware datetimes: it normalises them.
            spec = ScheduleSpec(
                cron=cron,
                interval=interval,
                timezone=timezone,
                jitter=jitter,
                catchup_window=catchup_window,
                calendar=cast("tuple[CalendarSpec, ...] | None", calendar),
                start_at=cast("int | None", start_at),
                end_at=cast("int | None", end_at),
            )
        except ScheduleSpecError as exc:
            raise ScheduleSpecError(f"{where}: {exc}") from None
        try:
            overlap = OverlapPolicy(overlap_policy)
        except ValueError:
            choices = ", ".join(policy.value for policy in OverlapPolicy)
            raise ScheduleError(f"{where}: unknown overlap policy {overlap_policy!r} (one of {choices})") from None
        call = _declared_call(where, args, kwargs)
        func = workflow(
            name=name,
            max_duration=max_duration,
            tags=tags,
            durable=durable,
            context_class=context_class,
            event_limits=event_limits,
            recover_on_worker_loss=recover_on_worker_loss,
            max_recovery_attempts=max_recovery_attempts,
        )(func)
        workflow_name = cast(WorkflowDefinition, workflow_definition(func)).name
        declared_id = workflow_name if schedule_id is None else schedule_id
        if not isinstance(declared_id, str) or not declared_id:
            raise ScheduleError(f"{where}: schedule_id must be a non-empty string, got {declared_id!r}")
        setattr(
            func,
            _SCHEDULE_ATTR,
            DeclaredSchedule(
                schedule_id=declared_id, workflow_name=workflow_name, spec=spec, overlap=overlap, args=call
            ),
        )
        return func

    return decorate


def _check_recovery(recover_on_worker_loss: object, max_recovery_attempts: object) -> None:
    if recover_on_worker_loss is not None and not isinstance(recover_on_worker_loss, bool):
        raise TypeError(f"recover_on_worker_loss must be a bool or None, got {recover_on_worker_loss!r}")
    if max_recovery_attempts is None:
        return
    if isinstance(max_recovery_attempts, bool) or not isinstance(max_recovery_attempts, int):
        raise TypeError(f"max_recovery_attempts must be an int or None, got {max_recovery_attempts!r}")
    if max_recovery_attempts < 0:
        raise ValueError(f"max_recovery_attempts must be >= 0, got {max_recovery_attempts}")


def _declared_call(where: str, args: object, kwargs: object) -> CallArgs:
    if not isinstance(args, (list, tuple)):
        raise ScheduleError(f"{where}: args must be a list or tuple, got {args!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(key, str) for key in kwargs):
        raise ScheduleError(f"{where}: kwargs must be a mapping with string keys, got {kwargs!r}")
    return CallArgs(tuple(args), dict(kwargs))


def _qualified(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def step_definition(obj: object) -> StepDefinition | None:
    """The ``StepDefinition`` attached by ``@step``, or None."""
    defn = getattr(obj, _STEP_ATTR, None)
    return defn if isinstance(defn, StepDefinition) else None


def workflow_definition(obj: object) -> WorkflowDefinition | None:
    """The ``WorkflowDefinition`` attached by ``@workflow``, or None."""
    defn = getattr(obj, _WORKFLOW_ATTR, None)
    return defn if isinstance(defn, WorkflowDefinition) else None


def declared_schedule(obj: object) -> DeclaredSchedule | None:
    """The ``DeclaredSchedule`` attached by ``@scheduled_workflow``, or None."""
    declared = getattr(obj, _SCHEDULE_ATTR, None)
    return declared if isinstance(declared, DeclaredSchedule) else None
