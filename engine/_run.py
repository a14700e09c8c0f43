"""Run: one workflow run as a pure state machine (inputs in; events and commands out)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from ._activation import activate, begin_workflow, finish
from ._children import adopt_children
from ._core import RunCore
from ._decide import Rejection, decide
from ._definitions import EventLimits
from ._errors import NonDeterminismError, RunClosedError
from ._events import HistoryEvent, WorkflowStarted
from ._finish import failed, outcome_of_event
from ._limits import enforce_limits, warn_on_soft
from ._payload_types import PayloadCheck
from ._pending import Mode
from ._records import Command, Input, RunFinished, StartWorkflow
from ._registry import Registry
from ._replay import TERMINAL_TYPES, check_history, replay_core
from ._status import RunStatus

_DEADLINE_TIMER = "workflow_timeout:-1:1"


@dataclass(frozen=True, slots=True)
class Transition:
    """What handling one input produced.

    Attributes:
        events: new history events, ``seq`` continuing the run's history, ``timestamp`` = now_ms.
            Append them atomically, in order, before sending the commands.
        commands: ExecuteStep / StartTimer / CancelTimer / StartWorkflow (child run or
            continue-as-new successor) / CancelWorkflow (a running child: ``handle.cancel()``, the
            parent's cancellation or its end) / RunFinished, in the order they were issued.
        ignored: why the input changed nothing (duplicate, stale, run finished), else None.
        rejected: the input was ignored because it does not belong to this run at all (a child's completion
            whose run id is not the child started at its position, nor a run that child continued as): hosts
            dead-letter it with ``ignored`` as the reason.
    """

    events: tuple[HistoryEvent, ...] = ()
    commands: tuple[Command, ...] = ()
    ignored: str | None = None
    rejected: bool = False


class Run:
    """One workflow run. The workflow coroutine stays suspended in memory between inputs,
    so handling an input costs O(1) in the history length; ``replay`` rebuilds a run whose
    Run object was lost (cache miss, restart). Not thread-safe: one input at a time.
    """

    def __init__(self, core: RunCore) -> None:
        """Internal: use ``Run.start``, ``Run.replay`` or ``Run.recover``."""
        self._core = core
        self._closed = False
        # Safety net for hosts that drop a Run without close(): unwind it under its own loop.
        self._finalizer = weakref.finalize(self, core.unwind)
        self._finalizer.atexit = False

    @classmethod
    def start(
        cls,
        registry: Registry,
        start: StartWorkflow,
        now_ms: int,
        limits: EventLimits | None = None,
        *,
        payload_check: PayloadCheck | None = None,
    ) -> tuple[Run, Transition]:
        """Start a run: WorkflowStarted, its deadline timer, and the first activation.

        ``limits`` are the host's default event limits; the workflow's own
        (``@workflow(event_limits=...)``) win. See ``EventLimits`` for what they do: if the
        first activation alone would exceed ``hard``, its commands are dropped and the run
        fails right after WorkflowStarted (and the deadline timer).

        ``payload_check`` is the host's payload codec (``RecordCodec.payload_check``): step, child and
        continue-as-new arguments it cannot carry raise its error at the workflow's call, and a result it
        cannot carry fails the run with it; None checks nothing (values are not encoded in memory).

        Raises:
            UnknownWorkflowError: ``start.workflow_name`` is not registered.
        """
        defn = registry.workflow(start.workflow_name)
        deadline = None if defn.max_duration_ms is None else now_ms + defn.max_duration_ms
        started = WorkflowStarted(
            run_id=start.run_id,
            seq=1,
            timestamp=now_ms,
            workflow_name=defn.name,
            args=start.args,
            idempotency_key=start.idempotency_key,
            parent_run_id=start.parent_run_id,
            parent_position=start.parent_position,
            continued_from=start.continued_from,
            deadline_at=deadline,
            depth=start.depth,
            chain_attempt=start.chain_attempt,
        )
        core = RunCore(defn, started, Mode.LIVE, limits=limits, payload_check=payload_check)
        core.emit(started)
        if deadline is not None:
            core.deadline_timer = _DEADLINE_TIMER
            core.start_timer(-1, "workflow_timeout", _DEADLINE_TIMER, deadline)
        base = (core.seq, len(core.events), len(core.commands))
        begin_workflow(core)
        activate(core)
        enforce_limits(core, *base)
        if base[0] > core.limits.soft:
            warn_on_soft(core, 0)  # WorkflowStarted + deadline timer alone crossed it
        run = cls(core)
        return run, run._drain()

    @classmethod
    def replay(
        cls,
        registry: Registry,
        history: Sequence[HistoryEvent],
        limits: EventLimits | None = None,
        *,
        payload_check: PayloadCheck | None = None,
    ) -> Run:
        """Rebuild a run from its history by re-running the workflow code; emits nothing.

        ``limits`` (the host's default event limits) apply to the inputs handled afterwards;
        replay itself never enforces them nor warns. A history already longer than ``hard``
        (the limit was lowered) replays, and its next live input fails the run. ``payload_check`` as for
        ``start`` (the same one: the code must see the same errors as when it ran live).

        Raises:
            HistoryError: the history is malformed.
            NonDeterminismError: the code no longer matches the history (its message names
                the position, the recorded and the new command).
            UnknownWorkflowError: the workflow is not registered.
        """
        return cls(replay_core(registry, history, limits, payload_check))

    @classmethod
    def recover(
        cls,
        registry: Registry,
        history: Sequence[HistoryEvent],
        now_ms: int,
        limits: EventLimits | None = None,
        *,
        payload_check: PayloadCheck | None = None,
    ) -> tuple[Run, Transition]:
        """What a host calls on a cache miss: ``replay``, but a divergence fails the run.

        Returns the run and the transition to persist: empty after a clean replay, or
        WorkflowFailed(NonDeterminismError) + RunFinished when the code diverged. A history
        that already ended is not re-run at all: the finished run ignores every input.
        ``limits`` and ``payload_check`` as for ``start``; the divergence failure is never held back by them.
        """
        started = check_history(history)
        ending = history[-1]
        if isinstance(ending, TERMINAL_TYPES):
            core = RunCore(
                registry.workflow(started.workflow_name),
                started,
                Mode.CLOSED,
                limits=limits,
                payload_check=payload_check,
            )
            core.seq = len(history)
            core.status = outcome_of_event(ending).status
            return cls(core), Transition()
        try:
            return cls.replay(registry, history, limits, payload_check=payload_check), Transition()
        except NonDeterminismError as exc:
            core = RunCore(
                registry.workflow(started.workflow_name), started, Mode.LIVE, limits=limits, payload_check=payload_check
            )
            core.seq = len(history)
            core.now_ms = max(now_ms, history[-1].timestamp)
            adopt_children(core, history)  # so the parent close policy reaches the children still running
            finish(core, failed(exc))
            warn_on_soft(core, len(history))
            run = cls(core)
            return run, run._drain()

    def handle(self, received: Input, now_ms: int) -> Transition:
        """Deliver one input at time ``now_ms`` (epoch ms; workflow time never goes backwards).

        Inputs for another run are ignored, except a child's RunFinished whose
        ``parent_run_id`` is this run (hosts route it to the parent).

        An input whose transition would take the history past the hard event limit is
        consumed by the failure instead: WorkflowFailed(EventLimitExceededError) + RunFinished.

        Raises:
            RunClosedError: the run was closed.
        """
        core = self._core
        if self._closed:
            raise RunClosedError(f"run {core.run_id} was closed")
        if core.status != RunStatus.RUNNING:
            return Transition(ignored=f"run {core.run_id} already finished ({core.status})")
        # A child's RunFinished carries the child's run_id and is delivered to its parent.
        is_child_completion = isinstance(received, RunFinished) and received.parent_run_id == core.run_id
        if received.run_id != core.run_id and not is_child_completion:
            return Transition(ignored=f"input for run {received.run_id} delivered to run {core.run_id}")
        previous_now = core.now_ms
        core.now_ms = max(now_ms, previous_now)
        base = (core.seq, len(core.events), len(core.commands))
        reason = decide(core, received)
        if reason is not None:
            # Invariant: ignored inputs leave no trace, not even in workflow time (replay never sees them).
            core.now_ms = previous_now
            return Transition(ignored=reason, rejected=isinstance(reason, Rejection))
        activate(core)
        enforce_limits(core, *base)
        return self._drain()

    def close(self) -> None:
        """Evict the run: unwind its coroutine (``finally`` blocks run; kflow calls in them are
        refused). Idempotent. Use ``Run.replay`` to bring it back."""
        if not self._closed:
            self._closed = True
            self._finalizer()

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._core.run_id

    @property
    def workflow_name(self) -> str:
        """The registered name of the run's workflow."""
        return self._core.workflow.name

    @property
    def status(self) -> str:
        """``running``, ``completed``, ``failed``, ``cancelled`` or ``continued_as_new``."""
        return self._core.status

    @property
    def finished(self) -> bool:
        """True once the run has ended (every further input is ignored)."""
        return self._core.status != RunStatus.RUNNING

    @property
    def history_length(self) -> int:
        """Number of events in the run's history (the seq of its last event)."""
        return self._core.seq

    @property
    def asleep_until(self) -> int | None:
        """When the run wakes by itself, if it waits on nothing but sleeps: the earliest one's due time (epoch ms).
        None when it waits on anything an input may settle at any time (a step, a hook, a child), or on nothing."""
        due: int | None = None
        for entry in self._core.pending.values():
            if entry.dropped:
                continue
            if entry.kind != "sleep" or entry.fire_at is None:
                return None
            due = entry.fire_at if due is None else min(due, entry.fire_at)
        return due

    def _drain(self) -> Transition:
        core = self._core
        transition = Transition(tuple(core.events), tuple(core.commands))
        core.events.clear()
        core.commands.clear()
        return transition
