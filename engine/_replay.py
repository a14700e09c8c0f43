"""Rebuilding a run from its history, checking that the workflow code still matches it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from ._activation import activate, begin_workflow, finish
from ._apply import apply_event
from ._core import RunCore
from ._definitions import EventLimits
from ._errors import ActivationBudgetExceededError, HistoryError, NonDeterminismError
from ._events import (
    ChildWorkflowCancelRequested,
    ChildWorkflowStarted,
    HistoryEvent,
    HookCreated,
    HookReceived,
    StepContextSet,
    StepScheduled,
    TerminalEvent,
    TimerScheduled,
    WorkflowFailed,
    WorkflowStarted,
)
from ._failures import qualified_name
from ._finish import Outcome, outcome_of_event
from ._limits import first_activation_dropped, is_limit_failure
from ._payload_types import PayloadCheck
from ._pending import CommandKey, Mode
from ._registry import Registry
from ._status import RunStatus

TERMINAL_TYPES = get_args(TerminalEvent)
_FORCED_FAILURE = qualified_name(NonDeterminismError)
_BUDGET_FAILURE = qualified_name(ActivationBudgetExceededError)


def replay_core(
    registry: Registry,
    history: Sequence[HistoryEvent],
    limits: EventLimits | None = None,
    payload_check: PayloadCheck | None = None,
) -> RunCore:
    """Replay ``history`` through the workflow code; return the rebuilt (live-mode) core.

    ``limits`` are the host's default event limits (the workflow's own win); replay does not
    enforce them. ``payload_check``: the host's (see ``Run.start``).

    Raises:
        HistoryError: the history is malformed.
        NonDeterminismError: the code issues different commands than the history recorded.
    """
    started = check_history(history)
    defn = registry.workflow(started.workflow_name)
    core = RunCore(defn, started, Mode.REPLAY, index_commands(history), limits, payload_check)
    if started.deadline_at is not None:
        core.deadline_timer = "workflow_timeout:-1:1"
    try:
        _replay_events(core, history)
    except NonDeterminismError:
        core.unwind()
        raise
    core.seq = len(history)
    core.recorded = {}
    if core.status == RunStatus.RUNNING:
        core.mode = Mode.LIVE
    return core


def check_history(history: Sequence[HistoryEvent]) -> WorkflowStarted:
    """Validate the shape of a history; return its WorkflowStarted.

    Raises:
        HistoryError: empty, not starting with WorkflowStarted, seq gaps, foreign run ids,
            or events after the terminal event.
    """
    if not history or not isinstance(history[0], WorkflowStarted):
        raise HistoryError("a history must start with WorkflowStarted")
    started = history[0]
    for index, event in enumerate(history):
        if event.seq != index + 1 or event.run_id != started.run_id:
            raise HistoryError(
                f"history of run {started.run_id}: event #{index + 1} is "
                f"{type(event).__name__}(run_id={event.run_id}, seq={event.seq})"
            )
        if isinstance(event, TERMINAL_TYPES) and index != len(history) - 1:
            raise HistoryError(f"history of run {started.run_id} continues after {type(event).__name__}")
    return started


def index_commands(history: Sequence[HistoryEvent]) -> dict[int, CommandKey]:
    """The command recorded at each position (what replayed code must issue there)."""
    recorded: dict[int, CommandKey] = {}
    for event in history:
        key = command_key(event)
        position = command_position(event)
        if key is not None and isinstance(position, int):
            if position in recorded:
                raise HistoryError(f"two commands recorded at position {position}")
            recorded[position] = key
    return recorded


def command_key(event: HistoryEvent) -> CommandKey | None:
    """The CommandKey of a code-issued event, or None for input-caused events."""
    if isinstance(event, StepScheduled) and event.attempt == 1:
        return CommandKey("step", event.step_name)
    if isinstance(event, TimerScheduled) and event.kind in ("sleep", "child_timeout"):
        return CommandKey(event.kind, event.kind)
    if isinstance(event, HookCreated):
        return CommandKey("hook", event.name)
    if isinstance(event, ChildWorkflowStarted):
        return CommandKey("child", event.workflow_name, close_policy=event.parent_close_policy or "cancel")
    if isinstance(event, ChildWorkflowCancelRequested) and event.command_position is not None:
        return CommandKey("child_cancel", event.child_run_id)
    if isinstance(event, StepContextSet):
        return CommandKey("context", "context")
    return None


def command_position(event: HistoryEvent) -> int | None:
    """The position of the command an event records (a child cancel's own, not its child's), or None."""
    if isinstance(event, ChildWorkflowCancelRequested):
        return event.command_position
    position = getattr(event, "position", None)
    return position if isinstance(position, int) else None


def _replay_events(core: RunCore, history: Sequence[HistoryEvent]) -> None:
    if first_activation_dropped(history):
        # The hard limit dropped the first activation's commands: re-running the code would
        # issue commands the history never recorded. Nothing ran; only the ending is replayed.
        ending = history[-1]
        assert isinstance(ending, WorkflowFailed)
        core.now_ms = ending.timestamp
        finish(core, outcome_of_event(ending))
        return
    begin_workflow(core)
    ended = _activate(core)
    for event in history[1:]:
        core.now_ms = event.timestamp
        if isinstance(event, TERMINAL_TYPES):
            _replay_ending(core, event, ended)
            return
        key = command_key(event)
        position = command_position(event)
        if key is not None and position is not None and position < core.next_position:
            # Invariant: a transition's events are persisted atomically, so a command recorded in
            # transition T was issued by the code during T's activation, i.e. before this point
            # (possibly just before the code ended, e.g. a hook that took a buffered payload).
            continue
        if isinstance(event, ChildWorkflowCancelRequested) and event.command_position is None:
            # Asked by the run itself: its cancellation (applied just before) or its ending (replayed next).
            continue
        if isinstance(event, HookReceived) and event.position in core.buffer_deliveries:
            # The hook took a buffered payload when the code called it (see RunCore.wait_hook):
            # this delivery, recorded in that same transition, is already applied.
            core.buffer_deliveries.discard(event.position)
            continue
        if ended is not None:
            raise core.divergence_error(
                position,
                key.describe() if key else type(event).__name__,
                f"nothing: the workflow already {ended.status}",
            )
        if key is not None:
            raise core.divergence_error(position, key.describe(), "nothing (the code has not reached it)")
        if isinstance(event, TimerScheduled):
            continue  # retry / hook / workflow timers are implied by the events that armed them
        apply_event(core, event)
        ended = _activate(core)
    if ended is not None:
        raise core.divergence_error(None, "no ending (the run is still going)", f"an ending: it {ended.status}")


def _activate(core: RunCore) -> Outcome | None:
    outcome = activate(core)
    if core.divergence is not None:
        raise core.divergence
    return outcome


def _replay_ending(core: RunCore, event: TerminalEvent, ended: Outcome | None) -> None:
    recorded = outcome_of_event(event)
    # Forced endings: the deadline, a divergence found by recover, the hard event limit (which
    # dropped the transition whose input would have let the code go on), or the activation budget
    # (replayed under a larger budget, the stopped code may get to wait instead).
    forced = isinstance(event, WorkflowFailed) and (
        core.timed_out or event.error.type in (_FORCED_FAILURE, _BUDGET_FAILURE) or is_limit_failure(event)
    )
    if ended is None and not forced:
        raise core.divergence_error(None, type(event).__name__, "nothing: the workflow code is still waiting")
    if ended is not None and ended.status != recorded.status:
        raise core.divergence_error(None, type(event).__name__, f"an ending where it {ended.status}")
    finish(core, recorded)
