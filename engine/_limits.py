"""Event limits: the soft-limit warning and the hard limit that fails a run.

# Invariant: the hard limit drops a whole transition, never part of one. A transition's
# events are persisted atomically and replay relies on it (a command recorded in transition
# T was issued during T's activation), so the input that would overflow the history is
# consumed by the failure instead: the history keeps everything up to the previous
# transition, then one WorkflowFailed(EventLimitExceededError). Replay sees the code waiting
# after the last kept transition and a recorded forced failure, and finishes identically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ._children import cancel_on_close
from ._core import RunCore
from ._errors import EventLimitExceededError
from ._events import HistoryEvent, TimerScheduled, WorkflowFailed
from ._failures import qualified_name
from ._finish import armed_timers, failed, run_finished, terminal_event
from ._pending import Mode
from ._records import CancelTimer, CancelWorkflow, StartTimer, StartWorkflow

logger = logging.getLogger("engine")

LIMIT_FAILURE = qualified_name(EventLimitExceededError)


def enforce_limits(core: RunCore, base_seq: int, base_events: int, base_commands: int) -> None:
    """After a live activation: fail the run if it overflowed ``hard``, warn on crossing ``soft``.

    ``base_*`` describe the state before the input: the seq of the last kept event and how
    many events and commands of the current buffers belong to earlier (kept) work.
    """
    if core.seq > core.limits.hard and core.events[base_events:]:
        _fail_over_hard(core, base_seq, base_events, base_commands)
    warn_on_soft(core, base_seq)


def warn_on_soft(core: RunCore, base_seq: int) -> None:
    """Log the soft-limit warning when the events since ``base_seq`` crossed it, or crossed one of the marks
    ``soft + k × event_warning_interval`` past it (live only; one warning per activation)."""
    soft = core.limits.soft
    if core.seq <= soft:
        return
    interval = core.limits.event_warning_interval
    last_mark = soft + (core.seq - 1 - soft) // interval * interval  # the highest mark below core.seq
    if base_seq <= last_mark:
        logger.warning(
            "workflow %r run %s: history has %d events, over the soft limit of %d (hard limit %d, "
            "where the run fails); call continue_as_new to carry on with a fresh history",
            core.workflow.name,
            core.run_id,
            core.seq,
            soft,
            core.limits.hard,
        )


def _fail_over_hard(core: RunCore, base_seq: int, base_events: int, base_commands: int) -> None:
    hard = core.limits.hard
    would_be = core.seq
    dropped_commands = core.commands[base_commands:]
    del core.events[base_events:]
    del core.commands[base_commands:]
    core.seq = base_seq
    # Timers the dropped work armed were never started; timers it cancelled are still armed.
    never_started = {c.timer_id for c in dropped_commands if isinstance(c, StartTimer)}
    still_armed = [c.timer_id for c in dropped_commands if isinstance(c, CancelTimer)]
    outcome = failed(
        EventLimitExceededError(
            f"workflow {core.workflow.name!r} run {core.run_id} exceeded its hard event limit: the "
            f"history would grow to {would_be} events, over the limit of {hard}; use continue_as_new "
            f"to start a fresh history before the limit (EventLimits.hard)"
        )
    )
    armed = [t for t in armed_timers(core) if t not in never_started]
    # Children the dropped work started never started; those it asked to cancel were never asked.
    unstarted = {c.run_id for c in dropped_commands if isinstance(c, StartWorkflow)}
    unasked = {c.run_id for c in dropped_commands if isinstance(c, CancelWorkflow)}
    for entry in core.pending.values():
        if entry.kind == "child" and entry.child_run_id in unasked:
            entry.cancel_sent = False
    core.mode = Mode.LIVE
    cancel_on_close(core, outcome.status, skip=unstarted)
    core.emit(terminal_event(core, outcome))
    for timer_id in dict.fromkeys(armed + still_armed):
        core.cancel_timer(timer_id)
    core.command(run_finished(core, outcome))
    core.status = outcome.status
    core.unwind()
    core.mode = Mode.CLOSED  # unwind() is a no-op when the dropped activation had ended the run


def is_limit_failure(event: HistoryEvent) -> bool:
    """True for the WorkflowFailed that records a hard-limit failure."""
    return isinstance(event, WorkflowFailed) and event.error.type == LIMIT_FAILURE


def first_activation_dropped(history: Sequence[HistoryEvent]) -> bool:
    """True when the run failed at the hard limit in its very first activation.

    Its history is WorkflowStarted, the deadline TimerScheduled if any, WorkflowFailed: the
    commands the code issued were dropped, so replay must not re-run the code at all.
    """
    body = history[1:-1]
    return is_limit_failure(history[-1]) and all(
        isinstance(e, TimerScheduled) and e.kind == "workflow_timeout" for e in body
    )
