"""What a schedule does with each input: the pure state machine behind ``kflow schedules``.

A schedule lives on the orchestrator partition of its key ``schedule:{id}``. Its state (``ScheduleState``)
is rewritten on the compacted state topic in the same transaction as the commands it issues, so a
restart resumes from exactly the state the last committed input left: a fire is never lost and never
repeated. Inputs: a ``ScheduleCommand`` (create, update, pause, resume, delete, trigger, backfill), the
``TimerFired`` of its armed timer, and the ``RunFinished`` of a run it started (started runs carry
``parent_run_id = schedule:{id}`` so their completion comes back here like a child's).

Invariants:
- run ids are derived, never random: a regular fire is ``uuid5(id@nominal)``, a trigger or a backfill
  fire is derived from its request id too; a buffered fire keeps the id it was fired under; a start that
  is re-sent is a duplicate of one run;
- at most one timer is armed, named by generation and nominal time; a timer whose id is not
  ``state.timer_id`` is stale (the schedule was updated, paused, resumed or deleted since) and ignored;
- fire times come from ``ScheduleSpec`` only, jitter is derived from (id, nominal): a replayed decision
  arms the same due time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import uuid

from ._cron import MAX_MS
from ._errors import KflowError
from ._records import (
    CallArgs,
    CancelTimer,
    CancelWorkflow,
    Command,
    RunFinished,
    ScheduleCommand,
    ScheduleState,
    StartTimer,
    StartWorkflow,
    TimerFired,
)
from ._schedule_fit import ScheduleDecision, SizeOf, fit_decision
from ._schedules import OverlapPolicy, ScheduleSpec
from ._status import RunStatus

SCHEDULE_KEY_PREFIX = "schedule:"
BACKFILL_LIMIT = 1000
_COUNT_CAP = 20_000  # missed cron/calendar fires counted one by one (~0.3 s); beyond, skipped is a lower bound
"""Most fires one backfill may start (a larger range is refused with a clear error)."""
BUFFER_LIMIT = 1000
"""Most fires a schedule keeps buffered (``buffer_all``); a fire past them is skipped (counted in ``skipped``)."""
_RECENT_RUNS = 20
_REMEMBERED_REQUESTS = 50
_NAMESPACE = uuid.UUID("6f1c3c2e-8a4b-5d3e-9b7a-2c1d0e9f8a7b")
ACTIONS = ("create", "update", "pause", "resume", "delete", "trigger", "backfill")
logger = logging.getLogger("engine")


class ScheduleError(KflowError):
    """A schedule command that cannot be applied (unknown schedule, bad spec, existing id, …)."""

    __module__ = "engine"
    retryable = False


def schedule_key(schedule_id: str) -> str:
    """The Kafka key (and partition owner) of a schedule."""
    return f"{SCHEDULE_KEY_PREFIX}{schedule_id}"


def is_schedule_key(key: str) -> bool:
    """True for ``schedule:{id}`` keys (run ids are never of that form)."""
    return key.startswith(SCHEDULE_KEY_PREFIX)


def trigger_run_id(schedule_id: str, request_id: str) -> str:
    """The run id a ``trigger`` request starts (the sender can compute it)."""
    return uuid.uuid5(_NAMESPACE, f"{schedule_id}!trigger#{request_id}").hex


def fire_run_id(schedule_id: str, nominal_ms: int, request_id: str | None = None) -> str:
    """The run id of the fire at ``nominal_ms`` (of a trigger or backfill request when ``request_id``)."""
    name = f"{schedule_id}@{nominal_ms}" if request_id is None else f"{schedule_id}@{nominal_ms}#{request_id}"
    return uuid.uuid5(_NAMESPACE, name).hex


def spec_of(state: ScheduleState) -> ScheduleSpec:
    """The ``ScheduleSpec`` stored in a state."""
    return ScheduleSpec.from_wire(json.loads(state.spec))


def decide_schedule(
    state: ScheduleState | None,
    received: ScheduleCommand | TimerFired | RunFinished,
    now_ms: int,
    *,
    size_of: SizeOf | None = None,
    max_bytes: int | None = None,
) -> ScheduleDecision:
    """Apply one input to a schedule's state at time ``now_ms`` (epoch ms).

    With ``size_of`` (a state's encoded size) and ``max_bytes`` (the host's record limit) the new state is kept
    under the limit (``engine._schedule_fit``): the oldest ``recent_runs`` and ``requests`` are trimmed; if that
    is not enough a timer's fire is skipped (counted in ``skipped``, a warning logged; the next fire is armed)
    and a command is refused with the reason.
    """
    try:
        decision = _decide(state, received, now_ms, room=True)
        if size_of is None or max_bytes is None or decision.state is None or not decision.changed:
            return decision
        roomless = functools.partial(_decide, state, received, now_ms, room=False)
        return fit_decision(received, decision, roomless, size_of, max_bytes)
    except (KflowError, ValueError) as exc:  # ScheduleSpecError is both
        return ScheduleDecision(state, changed=False, error=str(exc))


def _decide(
    state: ScheduleState | None, received: ScheduleCommand | TimerFired | RunFinished, now: int, *, room: bool
) -> ScheduleDecision:
    if isinstance(received, ScheduleCommand):
        return _command(state, received, now)
    if isinstance(received, TimerFired):
        return _timer(state, received, now, room=room)
    return _finished(state, received, now, room=room)


# --- commands -----------------------------------------------------------------------------------


def _command(state: ScheduleState | None, cmd: ScheduleCommand, now: int) -> ScheduleDecision:
    if state is not None and cmd.request_id in state.requests:
        return ScheduleDecision(state, changed=False, ignored=f"request {cmd.request_id} was applied already")
    if cmd.action == "create":
        if state is not None:
            raise ScheduleError(f"schedule {cmd.schedule_id!r} exists already (update it, or delete it first)")
        return _create(cmd, now)
    if cmd.action not in ACTIONS:
        raise ScheduleError(f"unknown schedule action {cmd.action!r} (one of {', '.join(ACTIONS)})")
    if state is None:
        raise ScheduleError(f"no schedule {cmd.schedule_id!r}")
    commands: list[Command] = []
    if cmd.action == "delete":
        _disarm(state, commands, now)
        return ScheduleDecision(None, tuple(commands))
    state = _remember(state, cmd.request_id, now)
    if cmd.action == "update":
        spec = ScheduleSpec.from_wire(json.loads(cmd.spec)) if cmd.spec is not None else spec_of(state)
        state = dataclasses.replace(
            state,
            workflow_name=cmd.workflow_name or state.workflow_name,
            args=cmd.args if cmd.args is not None else state.args,
            spec=json.dumps(spec.to_wire(), sort_keys=True) if cmd.spec is not None else state.spec,
            overlap=_policy(cmd.overlap).value if cmd.overlap is not None else state.overlap,
            note=cmd.note if cmd.note is not None else state.note,
        )
        state = _rearm(state, commands, now, paused=state.paused)
    elif cmd.action == "pause":
        state = _rearm(dataclasses.replace(state, note=cmd.note), commands, now, paused=True)
    elif cmd.action == "resume":
        state = _rearm(dataclasses.replace(state, note=cmd.note), commands, now, paused=False)
        state = _start_buffered(state, commands, now)  # a run ended while paused: its buffered fire starts now
    elif cmd.action == "trigger":
        state = _fire(state, now, trigger_run_id(state.schedule_id, cmd.request_id), commands, now)
    else:  # backfill
        if cmd.range_start is None or cmd.range_end is None or cmd.range_start >= cmd.range_end:
            raise ScheduleError("backfill needs range_start < range_end")
        for nominal in spec_of(state).fires_between(cmd.range_start, cmd.range_end, BACKFILL_LIMIT):
            state = _fire(state, nominal, fire_run_id(state.schedule_id, nominal, cmd.request_id), commands, now)
    return ScheduleDecision(state, tuple(commands))


def _create(cmd: ScheduleCommand, now: int) -> ScheduleDecision:
    if not cmd.workflow_name:
        raise ScheduleError("create needs a workflow_name")
    if cmd.spec is None:
        raise ScheduleError("create needs a spec")
    spec = ScheduleSpec.from_wire(json.loads(cmd.spec))
    state = ScheduleState(
        schedule_id=cmd.schedule_id,
        workflow_name=cmd.workflow_name,
        args=cmd.args or CallArgs((), {}),
        spec=json.dumps(spec.to_wire(), sort_keys=True),
        overlap=_policy(cmd.overlap or "skip").value,
        paused=False,
        note=cmd.note,
        created_at=now,
        updated_at=now,
        generation=0,
        requests=(cmd.request_id,),
        completed=0,
        failed=0,
        cancelled=0,
    )
    commands: list[Command] = []
    return ScheduleDecision(_rearm(state, commands, now, paused=False), tuple(commands))


def _policy(name: str) -> OverlapPolicy:
    try:
        return OverlapPolicy(name)
    except ValueError:
        choices = ", ".join(p.value for p in OverlapPolicy)
        raise ScheduleError(f"unknown overlap policy {name!r} (one of {choices})") from None


def _remember(state: ScheduleState, request_id: str, now: int) -> ScheduleState:
    requests = (*state.requests, request_id)[-_REMEMBERED_REQUESTS:]
    return dataclasses.replace(state, requests=requests, updated_at=now)


# --- timers -------------------------------------------------------------------------------------


def _disarm(state: ScheduleState, commands: list[Command], now: int) -> None:
    if state.timer_id is not None:
        key = schedule_key(state.schedule_id)
        commands.append(CancelTimer(run_id=key, timer_id=state.timer_id, requested_at=now))


def _rearm(state: ScheduleState, commands: list[Command], now: int, *, paused: bool) -> ScheduleState:
    """New generation: the old timer is cancelled, the next fire after ``now`` armed unless paused."""
    _disarm(state, commands, now)
    state = dataclasses.replace(
        state, paused=paused, generation=state.generation + 1, next_fire_at=None, timer_id=None, updated_at=now
    )
    return state if paused else _arm(state, spec_of(state).next_fire(now), commands, now)


def _arm(state: ScheduleState, nominal: int | None, commands: list[Command], now: int) -> ScheduleState:
    if nominal is None:  # past end_at: the schedule is spent
        return dataclasses.replace(state, next_fire_at=None, timer_id=None)
    timer_id = f"schedule:{state.generation}:{nominal}"
    due = nominal + spec_of(state).jitter_ms(state.schedule_id, nominal)
    commands.append(
        StartTimer(
            run_id=schedule_key(state.schedule_id),
            timer_id=timer_id,
            position=0,
            kind="schedule",
            fire_at=due,
            requested_at=now,
        )
    )
    return dataclasses.replace(state, next_fire_at=nominal, timer_id=timer_id)


def _timer(state: ScheduleState | None, fired: TimerFired, now: int, *, room: bool = True) -> ScheduleDecision:
    if state is None or fired.timer_id != state.timer_id or state.next_fire_at is None:
        return ScheduleDecision(state, changed=False, ignored=f"stale schedule timer {fired.timer_id}")
    nominal = state.next_fire_at
    commands: list[Command] = []
    state = _fire(state, nominal, fire_run_id(state.schedule_id, nominal), commands, now, room=room)
    # Fires missed while nothing ran (processor down, or stalled): those due within the catch-up window are
    # still taken, one timer after the other (each is due already); older ones are counted as skipped
    # (backfill runs them on purpose).
    spec = spec_of(state)
    following = spec.next_fire(nominal)
    missed = 0
    horizon = now - spec.catchup_window_ms
    surely = horizon - spec.max_jitter_ms  # a fire before this is due before the horizon, whatever its jitter
    if following is not None and following < surely:  # a long outage: count those at once, then go on
        target = spec.next_fire(surely - 1)
        missed = spec.count_fires(following, MAX_MS if target is None else target, _COUNT_CAP)
        following = target
    # missed = due (jitter included) before the horizon, not merely a nominal time in the past
    while following is not None and following + spec.jitter_ms(state.schedule_id, following) < horizon:
        missed += 1
        following = spec.next_fire(following)
    state = dataclasses.replace(state, skipped=state.skipped + missed, updated_at=now)
    return ScheduleDecision(_arm(state, following, commands, now), tuple(commands))


# --- fires and overlap --------------------------------------------------------------------------


def _fire(
    state: ScheduleState, nominal: int, run_id: str, commands: list[Command], now: int, *, room: bool = True
) -> ScheduleState:
    """One fire at ``nominal``: start, buffer, skip or cancel-and-start, by the overlap policy (skipped when
    there is no ``room``: its state would not fit the record limit, or ``BUFFER_LIMIT`` fires wait already)."""
    policy = OverlapPolicy(state.overlap)
    full = policy in (OverlapPolicy.BUFFER_ONE, OverlapPolicy.BUFFER_ALL) and len(state.buffered) >= BUFFER_LIMIT
    if not room or (state.running and policy is not OverlapPolicy.ALLOW_ALL):
        if not room or policy is OverlapPolicy.SKIP or (policy is OverlapPolicy.BUFFER_ONE and state.buffered) or full:
            if full and room:
                logger.warning(
                    "schedule %r: %d fires wait already (the most kept): fire skipped", state.schedule_id, BUFFER_LIMIT
                )
            return dataclasses.replace(state, skipped=state.skipped + 1, last_fire_at=nominal)
        if policy in (OverlapPolicy.BUFFER_ONE, OverlapPolicy.BUFFER_ALL):
            return dataclasses.replace(
                state,
                buffered=(*state.buffered, nominal),
                buffered_runs=(*state.buffered_runs, run_id),
                last_fire_at=nominal,
            )
        for running in state.running:  # CANCEL_OTHER
            commands.append(
                CancelWorkflow(
                    run_id=running,
                    reason=f"schedule {state.schedule_id}: overlap policy cancel_other",
                    requested_at=now,
                )
            )
    return _start(state, nominal, run_id, commands, now)


def _start(state: ScheduleState, nominal: int, run_id: str, commands: list[Command], now: int) -> ScheduleState:
    if run_id in state.running or run_id in state.recent_runs:
        return state  # the same fire again (a repeated request): one run
    commands.append(
        StartWorkflow(
            run_id=run_id,
            workflow_name=state.workflow_name,
            args=state.args,
            parent_run_id=schedule_key(state.schedule_id),
            requested_at=now,
        )
    )
    return dataclasses.replace(
        state,
        running=(*state.running, run_id),
        fires=state.fires + 1,
        last_fire_at=max(nominal, state.last_fire_at or nominal),
        recent_runs=(*state.recent_runs, run_id)[-_RECENT_RUNS:],
    )


def _finished(state: ScheduleState | None, finished: RunFinished, now: int, *, room: bool = True) -> ScheduleDecision:
    if state is None or finished.run_id not in state.running:
        return ScheduleDecision(state, changed=False, ignored=f"run {finished.run_id} is not running for it")
    running = tuple(r for r in state.running if r != finished.run_id)
    if finished.status == RunStatus.CONTINUED_AS_NEW and finished.next_run_id:
        running = (*running, finished.next_run_id)  # the chain is still the schedule's run
    state = _counted(dataclasses.replace(state, running=running, updated_at=now), finished.status)
    commands: list[Command] = []
    if not state.paused and room:
        state = _start_buffered(state, commands, now)
    return ScheduleDecision(state, tuple(commands))


def _counted(state: ScheduleState, status: str) -> ScheduleState:
    """``state`` with the outcome counter of a finished run's ``status`` one up (none for a continue-as-new
    link: its chain goes on)."""
    if status == RunStatus.COMPLETED:
        return dataclasses.replace(state, completed=(state.completed or 0) + 1)
    if status == RunStatus.FAILED:
        return dataclasses.replace(state, failed=(state.failed or 0) + 1)
    if status == RunStatus.CANCELLED:
        return dataclasses.replace(state, cancelled=(state.cancelled or 0) + 1)
    return state


def _start_buffered(state: ScheduleState, commands: list[Command], now: int) -> ScheduleState:
    """Start the oldest buffered fire, under the run id it was fired with, when nothing runs."""
    if not state.buffered or state.running:
        return state
    nominal, run_id = state.buffered[0], state.buffered_runs[0]
    rest = dataclasses.replace(state, buffered=state.buffered[1:], buffered_runs=state.buffered_runs[1:])
    return _start(rest, nominal, run_id, commands, now)
