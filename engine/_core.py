"""RunCore: the state of one run, and the commands workflow code issues into it.

Workflow code (``step`` calls, ``sleep``, ``hook`` ...) reaches the core through the running
``WorkflowLoop``. In live mode every command appends its history event and its outgoing
command to the current activation's buffers; in replay mode it is matched against the
recorded history instead and nothing is emitted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NoReturn

from ._children import cancel_with_parent
from ._context import StepContext
from ._definitions import EventLimits, StepDefinition, WorkflowDefinition
from ._errors import CancellationError, ContinueAsNewSignal, NonDeterminismError, Unwind
from ._events import (
    HistoryEvent,
    HookCreated,
    HookReceived,
    StepContextSet,
    StepScheduled,
    TimerScheduled,
    WorkflowStarted,
)
from ._loop import WorkflowLoop
from ._payload_size import early_payload_bytes
from ._payload_types import PayloadCheck
from ._pending import CommandKey, EventMeta, Mode, Pending, hook_token, validate_payload
from ._records import CallArgs, CancelTimer, Command, ExecuteStep, StartTimer
from ._status import RunStatus

TEARDOWN_AFTER_EXHAUSTION = 1_000
"""Callbacks a run that exceeded its activation budget gets to unwind its coroutines."""


class RunCore:
    """Mutable state of one run; see the module docstring."""

    def __init__(
        self,
        workflow: WorkflowDefinition,
        started: WorkflowStarted,
        mode: Mode,
        recorded: dict[int, CommandKey] | None = None,
        limits: EventLimits | None = None,
        payload_check: PayloadCheck | None = None,
    ) -> None:
        self.workflow = workflow
        self.payload_check = payload_check  # the host's: values its payload codec cannot carry raise at the call
        # The workflow's own limits win over the host's; EventLimits() when neither is set.
        self.limits = workflow.event_limits or limits or EventLimits()
        self.started = started
        self.run_id = started.run_id
        self.mode = mode
        self.recorded = recorded or {}
        self.loop = WorkflowLoop(self)  # type: ignore[abstract]  # asyncio needs only a subset
        self.main: asyncio.Task[object] | None = None
        self.now_ms = started.timestamp
        self.seq = started.seq
        self.next_position = 0
        self.pending: dict[int, Pending] = {}
        self.cancel_requested = False
        self.cancel_delivered = False
        self.cancel_reason: str | None = None
        self.shield_depth = 0
        self.continue_args: CallArgs | None = None
        self.deadline_timer: str | None = None
        self.timed_out = False
        self.status: str = RunStatus.RUNNING
        self.events: list[HistoryEvent] = []
        self.commands: list[Command] = []
        self.divergence: NonDeterminismError | None = None
        self.step_context: StepContext | None = None
        self.step_context_wire: object = None  # its wire form, stamped on every ExecuteStep
        # Early hook payloads: token -> payloads (FIFO) that arrived while no hook waited on the
        # token, recorded as HookReceived(position=BUFFERED_POSITION); taken by the next hook()
        # call with that token.
        self.hook_buffer: dict[str, deque[object]] = {}
        # What the buffered payloads count against ``limits.early_hook_bytes`` (``early_payload_bytes``).
        self.hook_buffer_bytes = 0
        # Tokens are one-shot: token -> "queued" (a payload waits for the hook() call), "received",
        # "expired" or "abandoned" (cancelled). A further payload for one of them is refused with the reason.
        self.used_tokens: dict[str, str] = {}
        # hook name -> hook() calls so far: the n-th call of a name (n >= 2) has the token "{run_id}:{name}#{n}".
        self.hook_calls: dict[str, int] = {}
        # (replay) positions whose hook took a buffered payload while the code ran: their recorded
        # HookReceived delivery is already applied and is skipped by replay.
        self.buffer_deliveries: set[int] = set()

    # -- emission -------------------------------------------------------------------------

    def meta(self) -> EventMeta:
        """run_id / next seq / timestamp for a new event (advances seq)."""
        self.seq += 1
        return EventMeta(run_id=self.run_id, seq=self.seq, timestamp=self.now_ms)

    def emit(self, event: HistoryEvent) -> None:
        """Append a new event to the activation (callers emit only in live mode)."""
        self.events.append(event)

    def command(self, command: Command) -> None:
        """Queue an outgoing command (dropped outside live mode)."""
        if self.mode is Mode.LIVE:
            self.commands.append(command)

    def cancel_timer(self, timer_id: str) -> None:
        """Queue a CancelTimer for a timer that is no longer needed."""
        self.command(CancelTimer(run_id=self.run_id, timer_id=timer_id, requested_at=self.now_ms))

    def start_timer(self, position: int, kind: str, timer_id: str, fire_at: int) -> None:
        """Emit TimerScheduled and queue StartTimer."""
        self.emit(TimerScheduled(**self.meta(), position=position, timer_id=timer_id, kind=kind, fire_at=fire_at))
        self.command(
            StartTimer(
                run_id=self.run_id,
                timer_id=timer_id,
                position=position,
                kind=kind,
                fire_at=fire_at,
                requested_at=self.now_ms,
            )
        )

    def schedule_step(self, entry: Pending, attempt: int) -> StepScheduled:
        """Emit StepScheduled for ``attempt`` of ``entry`` and queue its ExecuteStep."""
        assert entry.step is not None and entry.args is not None
        defn = entry.step
        event = StepScheduled(
            **self.meta(),
            position=entry.position,
            step_name=defn.name,
            args=entry.args,
            attempt=attempt,
            max_retries=defn.policy.max_retries,
            timeout_ms=defn.timeout_ms,
        )
        self.emit(event)
        self.command(
            ExecuteStep(
                run_id=self.run_id,
                workflow_name=self.workflow.name,
                position=entry.position,
                attempt=attempt,
                step_name=defn.name,
                args=entry.args,
                timeout_ms=defn.timeout_ms,
                context=entry.context,
                scheduled_at=self.now_ms,
            )
        )
        return event

    # -- commands issued by workflow code -------------------------------------------------

    def issue(self, key: CommandKey) -> int:
        """Take the next position for a command; in replay, check it against the history.

        # Invariant: positions are handed out in the order workflow code issues commands,
        # which the FIFO loop makes a function of the inputs alone.
        """
        if self.mode is Mode.CLOSED:
            raise Unwind()
        position = self.next_position
        self.next_position += 1
        if self.mode is Mode.REPLAY:
            recorded = self.recorded.get(position)
            if recorded != key:
                self.diverge(position, recorded.describe() if recorded else "nothing", key.describe())
        return position

    def check_payload(self, value: object, field: str) -> None:
        """Raise, at the workflow's call, what encoding ``value`` as ``field`` would raise (replay too)."""
        if self.payload_check is not None and self.mode is not Mode.CLOSED:
            self.payload_check(value, field)

    def diverge(self, position: int, recorded: str, new: str) -> NoReturn:
        """Record a divergence and unwind the workflow code (called from workflow code)."""
        self.divergence = self.divergence_error(position, recorded, new)
        self.mode = Mode.CLOSED
        raise Unwind()

    def divergence_error(self, position: int | None, recorded: str, new: str) -> NonDeterminismError:
        """A NonDeterminismError naming the position, the recorded and the new command."""
        where = f"position {position}" if position is not None else "the end of the run"
        return NonDeterminismError(
            f"workflow {self.workflow.name!r} run {self.run_id} diverged from its history at "
            f"{where}: history recorded {recorded}, the workflow code now issues {new}",
            position,
            recorded,
            new,
        )

    async def call_step(self, defn: StepDefinition, args: CallArgs) -> object:
        """Issue a step call and wait for its final outcome."""
        self.check_payload(args, "args")
        position = self.issue(CommandKey("step", defn.name))
        entry = Pending(
            position, "step", self.loop.create_future(), defn.name, step=defn, args=args, context=self.step_context_wire
        )
        self.pending[position] = entry
        if self.mode is Mode.LIVE:
            self.schedule_step(entry, 1)
        return await entry.future

    async def sleep_until(self, fire_at: int) -> None:
        """Issue a durable timer and wait for it (``fire_at`` is clamped to now)."""
        position = self.issue(CommandKey("sleep", "sleep"))
        timer_id = f"sleep:{position}:1"
        due = max(fire_at, self.now_ms)
        entry = Pending(position, "sleep", self.loop.create_future(), "sleep", timer_id=timer_id, fire_at=due)
        self.pending[position] = entry
        if self.mode is Mode.LIVE:
            self.start_timer(position, "sleep", timer_id, due)
        await entry.future

    async def wait_hook(
        self, name: str, timeout_ms: int | None, on_created: Callable[[str], Awaitable[object]] | None, schema: object
    ) -> object:
        """Issue a hook, run ``on_created(token)``, then wait for the payload.

        A payload buffered for the token (it arrived before this call) is delivered at once, in
        live and replay mode alike so the code runs the same way: live mode records
        ``HookReceived(position)`` for it right after ``HookCreated`` and arms no timeout timer
        (``HookCreated.expires_at`` still records the requested timeout). Buffered payloads the
        schema rejects are dropped (oldest first) until one validates; with none left the hook
        waits as usual (and its token takes a payload again).
        """
        if "#" in name:
            raise ValueError(f"hook name {name!r} contains '#', which separates a token's call number")
        position = self.issue(CommandKey("hook", name))
        calls = self.hook_calls[name] = self.hook_calls.get(name, 0) + 1
        token = hook_token(self.run_id, name, calls)
        future = self.loop.create_future()
        delivered = self._take_buffered(token, schema)
        timer_id = None if timeout_ms is None or delivered is not None else f"hook_timeout:{position}:1"
        entry = Pending(position, "hook", future, name, token=token, timer_id=timer_id, schema=schema)
        if self.mode is Mode.LIVE:
            expires_at = None if timeout_ms is None else self.now_ms + timeout_ms
            self.emit(HookCreated(**self.meta(), position=position, name=name, token=token, expires_at=expires_at))
            if timer_id is not None and expires_at is not None:
                self.start_timer(position, "hook_timeout", timer_id, expires_at)
        if delivered is None:
            self.pending[position] = entry
        else:
            payload, value = delivered
            if self.mode is Mode.LIVE:
                self.emit(HookReceived(**self.meta(), position=position, token=token, payload=payload))
            else:
                self.buffer_deliveries.add(position)
            future.set_result(value)
        if on_created is not None:
            await on_created(token)
        return await future

    def _take_buffered(self, token: str, schema: object) -> tuple[object, object] | None:
        """Pop the oldest buffered payload for ``token`` that ``schema`` accepts: (payload, value)."""
        queue = self.hook_buffer.get(token)
        while queue:
            payload = queue.popleft()
            self.hook_buffer_bytes -= early_payload_bytes(token, payload)
            try:
                value = validate_payload(schema, payload)
            except Exception:  # rejected by the schema: dropped, as a live rejection is ignored
                self.used_tokens.pop(token, None)
                continue
            finally:
                if not queue:
                    del self.hook_buffer[token]
            self.used_tokens[token] = "received"
            return payload, value
        return None

    def set_step_context(self, ctx: StepContext, wire: object) -> None:
        """Issue a context change: record StepContextSet (live) and make ``ctx`` current.

        No command goes to the host; steps issued from now on carry ``wire``. In replay the
        code sets the same context again at the same position, which restores it.
        """
        position = self.issue(CommandKey("context", "context"))
        if self.mode is Mode.LIVE:
            self.emit(StepContextSet(**self.meta(), position=position, context=wire))
        self.step_context, self.step_context_wire = ctx, wire

    def request_continue(self, args: CallArgs) -> ContinueAsNewSignal:
        """Note a continue-as-new request; the run ends after this activation."""
        if self.mode is Mode.CLOSED:
            raise Unwind()
        self.check_payload(args, "args")
        if self.continue_args is None:
            self.continue_args = args
        return ContinueAsNewSignal()

    # -- cancellation ---------------------------------------------------------------------

    def deliver_cancellation(self) -> None:
        """Raise CancellationError at every await currently waiting on this run's commands."""
        self.cancel_delivered = True
        for position in sorted(self.pending):
            entry = self.pending[position]
            if entry.dropped:
                continue
            entry.abandoned = True
            if entry.kind == "child":
                cancel_with_parent(self, entry)  # unless its parent close policy is "abandon"
            if entry.timer_id is not None and (entry.kind != "step" or entry.awaiting_retry):
                self.cancel_timer(entry.timer_id)
            if entry.kind == "hook" and entry.token is not None:
                self.used_tokens.setdefault(entry.token, "abandoned")
            if entry.kind not in ("step", "child") or entry.awaiting_retry:
                del self.pending[position]  # nothing more will be recorded for it
            entry.future.set_exception(CancellationError(self.cancel_reason or "run cancelled", self.cancel_reason))

    # -- teardown -------------------------------------------------------------------------

    def unwind(self) -> None:
        """Close the workflow coroutines: ``Unwind`` at every pending await, then cancel the rest.

        ``finally`` blocks run; any kflow command issued from them raises ``Unwind`` at once.
        """
        if self.loop.is_closed():
            return
        self.mode = Mode.CLOSED
        # Teardown is budgeted like an activation (a ``finally`` that spins must not hang the host);
        # code that already ran out of its budget gets only a little more.
        budget = self.limits.activation_steps
        if self.loop.exhausted:
            budget = min(budget, TEARDOWN_AFTER_EXHAUSTION)
        for entry in self.pending.values():
            if not entry.future.done():
                entry.future.set_exception(Unwind())
        self.loop.run_ready(self.now_ms, budget)
        for task in self.loop.tasks():
            task.cancel()
        self.loop.run_ready(self.now_ms, budget)
        self.loop.close()
