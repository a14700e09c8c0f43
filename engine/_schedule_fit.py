"""Keeping a schedule's state under the record limit of the host (its ``ScheduleState`` is one Kafka record).

What grows in a state: ``running`` (runs it started that have not ended: ``allow_all``, or ``cancel_other`` while
cancelled runs finish), ``buffered`` / ``buffered_runs`` (bounded by ``BUFFER_LIMIT``), ``recent_runs`` and
``requests`` (the newest 20 and 50), and what commands set (``args``, ``spec``, ``note``). When a new state would
not fit, ``decide_schedule`` (given ``size_of`` and ``max_bytes``) first trims the bookkeeping below, then skips
the fire that would not fit (a timer) or refuses the command with this module's reason; never a silent stop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ._payload_size import payload_bytes
from ._records import Command, ScheduleCommand, ScheduleState, TimerFired

logger = logging.getLogger("engine")

SizeOf = Callable[[ScheduleState], int]
"""The encoded size of a state in bytes (the host's record codec)."""


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """The new state (None: deleted, or never created) and the commands to send.

    ``changed`` False means nothing is to be written (``ignored`` says why); ``error`` is set when the
    input was refused: the host parks it with that reason and writes nothing.
    """

    state: ScheduleState | None
    commands: tuple[Command, ...] = ()
    changed: bool = True
    ignored: str | None = None
    error: str | None = None


def fit_decision(
    received: object,
    decision: ScheduleDecision,
    roomless: Callable[[], ScheduleDecision],
    size_of: SizeOf,
    max_bytes: int,
) -> ScheduleDecision:
    """``decision`` with a state of at most ``max_bytes``: its bookkeeping trimmed, else (a command) refused with
    the reason, else (a timer, a run's end) decided again by ``roomless``, where a fire is skipped and a buffered
    fire waits on, and trimmed; ``decision`` as it is only when even that is over (a state written over the limit
    before: the host dead-letters the input, with the reason)."""
    state = decision.state
    assert state is not None
    size = size_of(state)
    if size <= max_bytes:
        return decision
    what = f"schedule {state.schedule_id!r}: {over_limit(state, size, max_bytes)}"
    trimmed = trim_bookkeeping(state, size_of, max_bytes)
    if trimmed is not None:
        logger.warning("%s; kept only its newest recent runs and request ids", what)
        return dataclasses.replace(decision, state=trimmed)
    if isinstance(received, ScheduleCommand):
        return ScheduleDecision(None, changed=False, error=f"{received.action} refused: {what}")
    fallback = roomless()
    state = fallback.state or state
    fitted = state if size_of(state) <= max_bytes else trim_bookkeeping(state, size_of, max_bytes)
    fitted = fitted or shed_buffered(state, size_of, max_bytes)
    if fitted is None:
        logger.error("%s; the %s cannot be recorded", what, type(received).__name__)
        return decision
    logger.warning("%s; %s", what, "the fire was skipped" if isinstance(received, TimerFired) else "trimmed")
    return dataclasses.replace(fallback, state=fitted)


def trim_bookkeeping(state: ScheduleState, size_of: SizeOf, max_bytes: int) -> ScheduleState | None:
    """``state`` with only the newest ``recent_runs`` and ``requests`` (halved until it fits, the newest one of
    each kept), or None when even that does not fit."""
    recent, requests = state.recent_runs, state.requests
    while len(recent) > 1 or len(requests) > 1:
        recent, requests = recent[len(recent) // 2 :], requests[len(requests) // 2 :]
        trimmed = dataclasses.replace(state, recent_runs=recent, requests=requests)
        if size_of(trimmed) <= max_bytes:
            return trimmed
    return None


def shed_buffered(state: ScheduleState, size_of: SizeOf, max_bytes: int) -> ScheduleState | None:
    """``state`` without its newest buffered fires (each counted as skipped) until it fits; None when it does not
    fit without any."""
    buffered, runs = state.buffered, state.buffered_runs
    while buffered:
        keep = len(buffered) // 2
        buffered, runs = buffered[:keep], runs[:keep]
        shed = len(state.buffered) - keep
        candidate = dataclasses.replace(state, buffered=buffered, buffered_runs=runs, skipped=state.skipped + shed)
        if size_of(candidate) <= max_bytes:
            return candidate
    return None


def over_limit(state: ScheduleState, size: int, max_bytes: int) -> str:
    """Why a state cannot be written: its size, the limit, and what takes the room."""
    return (
        f"its state would be {size:,} bytes, over the {max_bytes:,} bytes a schedule's state may take (the record "
        "limit, MAX_MESSAGE_BYTES, less room for its key): "
        f"arguments about {payload_bytes(state.args):,} bytes, {len(state.running)} running runs, "
        f"{len(state.buffered)} buffered fires; give smaller arguments (a reference to large data) or let "
        "running runs end"
    )
