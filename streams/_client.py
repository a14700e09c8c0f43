"""The client: start runs, wait for results, cancel, resume hooks, read history — all through Kafka.

Commands go to ``<prefix>.inbox`` keyed by run id; results come from ``<prefix>.completions`` through one
tail consumer per client; a hook payload's answer is read from its run's ``<prefix>.history`` and
``<prefix>.dlq`` partitions; run views scan ``<prefix>.history`` (always current; the ops CLI reads Cassandra).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal, cast, overload

from aiokafka import AIOKafkaProducer, TopicPartition

import engine
from engine import (CallArgs, CancelWorkflow, CancellationError, ErrorInfo, HistoryEvent, KflowError, Registry,
                    ResumeHook, RunFinished, StartWorkflow, SystemClock, WorkflowDefinition)
from schemas import PayloadError, RecordCodec, SchemaError
from streams import _kafka
from streams._completions import CompletionsReader, partition_for
from streams._config import Settings
from streams._hook_answers import HookAnswerMatcher, HookAnswerWatch
from streams._run_history import HistorySource, RunHistory
from streams._topics import Topics

if TYPE_CHECKING:
    from streams._schedules import Schedules

log = logging.getLogger(__name__)

RUN_ID_NAMESPACE: Final = uuid.UUID("0c64a7fc-d3b7-486d-b08e-4b72457f58a9")
"""UUID namespace of run ids derived from idempotency keys (fixed: clients in any language must agree)."""



class HookDeliveryError(KflowError):
    """A hook payload that cannot be delivered: no such run, the run has finished, the token does not
    belong to it, the hook's ``payload_schema`` rejected the payload, or the token is malformed.

    Attributes:
        token: the hook token the payload was sent to.
        reason: why it was not delivered (the dead letter's reason).
    """

    __module__ = "streams"
    retryable = False

    def __init__(self, message: str, token: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.token = token
        self.reason = reason

    @classmethod
    def refused(cls, token: str, reason: str) -> HookDeliveryError:
        """The error for the payload to ``token`` refused for ``reason``."""
        return cls(f"hook payload for {token} not delivered: {reason}", token, reason)


def run_id_for(workflow_name: str, idempotency_key: str | None = None) -> str:
    """The run id for a start: random (UUID4 hex), or derived from the idempotency key (UUID5 hex).

    Invariant: one (workflow name, key) pair always maps to one run id, and the orchestrator ignores a
    second ``StartWorkflow`` for a run id it knows (decided on that run's partition), so racing starts
    with one key yield one run.
    """
    if idempotency_key is None:
        return uuid.uuid4().hex
    return uuid.uuid5(RUN_ID_NAMESPACE, f"{workflow_name}\0{idempotency_key}").hex


def run_id_of_token(token: str) -> str:
    """The run of a hook token ``"{run_id}:{name}"`` (before the first ``:``); ValueError if it has none."""
    run_id, sep, _ = token.partition(":")
    if not sep or not run_id:
        raise ValueError(f"hook token {token!r} is not of the form '<run_id>:<name>'")
    return run_id


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What ``get_run`` reports: ``status`` is ``running``, ``completed``, ``failed``, ``cancelled`` or
    ``continued_as_new``; timestamps are epoch ms (``finished_at`` None while running)."""

    run_id: str
    workflow_name: str
    status: str
    result: object = None
    error: ErrorInfo | None = None
    started_at: int = 0
    finished_at: int | None = None
    next_run_id: str | None = None


class Client:
    """Start and follow workflow runs through Kafka (API.md §2).

    Use as ``async with Client(...) as client`` (or ``connect()`` / ``close()``); methods connect on first use.

    Args:
        bootstrap: Kafka bootstrap servers; default ``settings.bootstrap`` (``KFLOW_BOOTSTRAP``).
        settings: servers and topic prefix; default ``Settings.from_env()``.
        registry: when given, ``start`` refuses workflow names it does not know before sending anything.
        records: codec for records and payloads (default: JSON payloads, ``settings.secret`` for pickles).
        history: where ``get_run`` / ``get_events`` read: ``"cassandra"`` (default: the events the
            materializer wrote, plus the part of the history topic it has not written yet; the topic alone
            while Cassandra is unreachable) or ``"kafka"`` (a scan of the run's history partition).
    """

    def __init__(self, bootstrap: str | None = None, *, settings: Settings | None = None,
                 registry: Registry | None = None, records: RecordCodec | None = None,
                 history: HistorySource = "cassandra") -> None:
        settings = settings or Settings.from_env()
        self.settings = dataclasses.replace(settings, bootstrap=bootstrap) if bootstrap else settings
        self.registry = registry
        self.records = records or RecordCodec(secret=self.settings.secret)
        self.topics = Topics(self.settings.topic_prefix)
        self._clock = SystemClock()
        self._producer: AIOKafkaProducer | None = None
        self._reader = CompletionsReader(self.settings.bootstrap, self.topics.completions)
        self._history_partitions = 0
        self.history = RunHistory(self.settings, self.records, self._reader, self.topics.history, history)
        self._connect_lock = asyncio.Lock()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect the producer and position the completions tail at the end (idempotent)."""
        async with self._connect_lock:
            if self._producer is not None:
                return
            producer = _kafka.producer(self.settings.bootstrap)
            try:
                await producer.start()
                self._history_partitions = len(await producer.partitions_for(self.topics.history))
                await self._reader.open(len(await producer.partitions_for(self.topics.completions)))
            except BaseException:
                await producer.stop()
                await self._reader.close()
                raise
            self._producer = producer

    async def close(self) -> None:
        """Disconnect; waits still pending are cancelled."""
        await self._reader.close()
        await self.history.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def start(self, workflow: str | Callable[..., object], /, *args: object,
                    idempotency_key: str | None = None, **kwargs: object) -> str:
        """Start a run of ``workflow`` (a name or an ``@workflow`` function); returns its run id.

        With an ``idempotency_key`` the run id is derived from (workflow name, key): the same key names the
        same run whether it is running, completed or failed; a start with a used key returns that run's id
        and starts nothing (racing starts yield one run). The key's scope is the workflow name.

        Raises ``UnknownWorkflowError`` (not an ``@workflow``, or not in ``registry``) and ``PayloadError``
        (arguments the payload codec cannot carry, or over the record size limit).
        """
        name = _workflow_name(workflow)
        if self.registry is not None:
            self.registry.workflow(name)
        run_id = run_id_for(name, idempotency_key)
        record = StartWorkflow(run_id=run_id, workflow_name=name, args=CallArgs(tuple(args), dict(kwargs)),
                               idempotency_key=idempotency_key, requested_at=self._clock.now_ms())
        value = self.records.encode(record)
        if len(value) > _kafka.MAX_MESSAGE_BYTES:
            raise PayloadError(f"the arguments encode to {len(value)} bytes, over the "
                               f"{_kafka.MAX_MESSAGE_BYTES}-byte record limit")
        await self.connect()
        if idempotency_key is None:
            self._reader.expect(run_id)  # before sending: the tail must keep its completion
        await self._send(run_id, value)
        return run_id

    async def result(self, run_id: str, timeout: float | None = None) -> object:
        """Wait for the run to finish and return its result, following continue-as-new to the last run.

        Raises the failed run's error rebuilt (its own type when importable here, else ``StepFailedError``),
        ``CancellationError`` for a cancelled run, ``TimeoutError`` when not finished within ``timeout`` s.
        """
        await self.connect()
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        current, tailed_since = run_id, None
        while True:
            raw, tailed = await self._reader.wait(current, deadline, tailed_since=tailed_since)
            finished = self.records.decode(raw)
            if not isinstance(finished, RunFinished):
                raise SchemaError(f"{type(finished).__name__} on {self.topics.completions} for run {current}")
            if finished.status != "continued_as_new" or not finished.next_run_id:
                return _outcome(finished)
            # The successor's completion is written after this one: if the tail delivered this one, it
            # delivers the successor's too (no scan of its partition is needed). Else the chain finished
            # (in part) before the tail started: Cassandra's run links skip the links already done, so only
            # the last one needs a scan, not every one.
            current, tailed_since = finished.next_run_id, (self._reader.evictions if tailed else None)
            if not tailed:
                current = await self.history.chain_end(current)

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """Ask the run to cancel (``CancellationError`` is raised in it at its current await)."""
        record = CancelWorkflow(run_id=run_id, reason=reason, requested_at=self._clock.now_ms())
        await self._send(run_id, self.records.encode(record))

    async def resume_hook(self, token: str, payload: object, *, wait: bool = True, timeout: float = 30.0) -> str:
        """Send ``payload`` to the hook ``token`` and, with ``wait``, learn its fate.

        The token of a run's first ``hook(name)`` is ``"{run_id}:{name}"``, of its n-th ``"{run_id}:{name}#{n}"``
        (``on_created`` receives it); a token takes one payload.

        Returns ``"delivered"`` (a hook was waiting on the token and took it), ``"queued"`` (the run is
        running but not waiting on that token yet: the payload is kept and delivered when the workflow
        reaches that ``hook()`` call; a ``payload_schema`` is only checked then, and a payload it rejects is
        dropped, the token free again) or, with ``wait=False``, ``"sent"`` as soon as Kafka has it.

        Raises ``HookDeliveryError`` (with ``reason``) for a malformed token (before sending anything), no
        such run, a finished run, a token that already took its payload (delivered, or queued and waiting)
        or has expired, or a payload the waiting hook's ``payload_schema`` rejects;
        ``TimeoutError`` when no answer came within ``timeout`` s (no processor running? the payload was
        sent and may still be delivered); ``PayloadError`` for a payload the codec cannot carry.
        """
        try:
            run_id = run_id_of_token(token)
        except ValueError as exc:
            raise HookDeliveryError.refused(token, str(exc)) from None
        record = ResumeHook(run_id=run_id, token=token, payload=payload, requested_at=self._clock.now_ms())
        value = self.records.encode(record)
        if len(value) > _kafka.MAX_MESSAGE_BYTES:
            raise PayloadError(f"the payload encodes to {len(value)} bytes, over the "
                               f"{_kafka.MAX_MESSAGE_BYTES}-byte record limit")
        if not wait:
            await self._send(run_id, value)
            return "sent"
        deadline = asyncio.get_running_loop().time() + timeout
        await self.connect()
        assert self._producer is not None
        key = run_id.encode()
        history = TopicPartition(self.topics.history, partition_for(key, self._history_partitions))
        dlq = TopicPartition(self.topics.dlq,
                             partition_for(key, len(await self._producer.partitions_for(self.topics.dlq))))
        # The watch is positioned before the send, so the answer (written after it) cannot be missed.
        async with HookAnswerWatch(self.settings.bootstrap, history, dlq) as watch:
            offset = await self._send(run_id, value)
            answer = await watch.answer(HookAnswerMatcher(self.records, value, self.topics.inbox, offset), deadline)
        if answer is None:
            raise TimeoutError(f"no answer to the hook payload for {token} within {timeout:g} s (is a kflow "
                               f"processor running on {self.topics.inbox}?); it was sent and may still be delivered")
        if answer.outcome == "refused":
            raise HookDeliveryError.refused(token, answer.reason)
        return answer.outcome

    async def get_events(self, run_id: str) -> list[HistoryEvent]:
        """The run's history events ordered by ``seq`` (empty for an unknown run), always current: what the
        materializer has written to Cassandra plus the newer part of the history topic (see ``history``)."""
        await self.connect()
        return await self.history.events(run_id, partition_for(run_id.encode(), self._history_partitions))

    async def get_run(self, run_id: str) -> RunInfo | None:
        """Status, result or error, and timestamps of the run; None when it has no history (yet).

        Derived from ``get_events``, so as current as the history topic."""
        return _run_info(run_id, await self.get_events(run_id))

    async def _send(self, run_id: str, value: bytes) -> int:
        """Produce ``value`` to the inbox keyed by ``run_id``; returns its offset there."""
        await self.connect()
        assert self._producer is not None
        metadata = await self._producer.send_and_wait(self.topics.inbox, value, key=run_id.encode())
        return int(metadata.offset)

    # --- schedules (implemented in streams._schedules) ---------------------------------------------------

    @overload
    async def create_schedule(self, schedule_id: str, workflow: str | Callable[..., object],
                              spec: engine.ScheduleSpec, /, *args: object, overlap: engine.OverlapPolicy | str = ...,
                              note: str | None = ..., wait: Literal[True] = ..., timeout: float = ...,
                              **kwargs: object) -> engine.ScheduleState: ...

    @overload
    async def create_schedule(self, schedule_id: str, workflow: str | Callable[..., object],
                              spec: engine.ScheduleSpec, /, *args: object, overlap: engine.OverlapPolicy | str = ...,
                              note: str | None = ..., wait: bool, timeout: float = ...,
                              **kwargs: object) -> engine.ScheduleState | None: ...

    async def create_schedule(self, schedule_id: str, workflow: str | Callable[..., object],
                              spec: engine.ScheduleSpec, /, *args: object, overlap: engine.OverlapPolicy | str = "skip",
                              note: str | None = None, wait: bool = True, timeout: float = 30.0,
                              **kwargs: object) -> engine.ScheduleState | None:
        """Create schedule ``schedule_id``: start ``workflow(*args, **kwargs)`` at each fire time of ``spec``.

        Each fire is an idempotent start of a run with a derived id (``engine.fire_run_id(id, nominal_ms)``)
        and ``parent_run_id = "schedule:{id}"``. ``overlap`` (an ``OverlapPolicy`` or its value) says what a
        fire does while a run the schedule started is still running. Returns the state once the orchestrator
        applied the command (``next_fire_at`` is the first nominal fire); ``wait=False`` returns None as soon
        as Kafka has it. ``overlap``, ``note``, ``wait`` and ``timeout`` cannot be workflow keyword arguments
        (pass those with ``update_schedule(kwargs=...)``).

        Raises:
            ScheduleError: the id exists already, an unknown overlap policy (before sending), another refusal.
            ScheduleSpecError: ``spec`` is not a ``ScheduleSpec`` (building a bad one raises it too).
            UnknownWorkflowError, PayloadError: as for ``start``.
            TimeoutError: no answer within ``timeout`` s (no processor running? the command may still apply).
        """
        return await self._schedule_ops().create(
            schedule_id, _workflow_name(workflow), spec, CallArgs(tuple(args), dict(kwargs)), overlap=overlap,
            note=note, wait=wait, timeout=timeout)

    @overload
    async def update_schedule(self, schedule_id: str, *, workflow: str | Callable[..., object] | None = ...,
                              spec: engine.ScheduleSpec | None = ..., args: tuple[object, ...] | None = ...,
                              kwargs: dict[str, object] | None = ..., overlap: engine.OverlapPolicy | str | None = ...,
                              note: str | None = ..., wait: Literal[True] = ...,
                              timeout: float = ...) -> engine.ScheduleState: ...

    @overload
    async def update_schedule(self, schedule_id: str, *, workflow: str | Callable[..., object] | None = ...,
                              spec: engine.ScheduleSpec | None = ..., args: tuple[object, ...] | None = ...,
                              kwargs: dict[str, object] | None = ..., overlap: engine.OverlapPolicy | str | None = ...,
                              note: str | None = ..., wait: bool, timeout: float = ...) -> engine.ScheduleState | None: ...

    async def update_schedule(self, schedule_id: str, *, workflow: str | Callable[..., object] | None = None,
                              spec: engine.ScheduleSpec | None = None, args: tuple[object, ...] | None = None,
                              kwargs: dict[str, object] | None = None, overlap: engine.OverlapPolicy | str | None = None,
                              note: str | None = None, wait: bool = True,
                              timeout: float = 30.0) -> engine.ScheduleState | None:
        """Change what is given (None keeps it) and re-arm the schedule from now (the next fire is the first
        after now; a paused schedule stays paused). ``args`` and ``kwargs`` replace the call's arguments
        together: giving one empties the other. Returns the new state (None with ``wait=False``).

        Raises: as ``create_schedule``; ``ScheduleError`` also for no such schedule.
        """
        call = None if args is None and kwargs is None else CallArgs(tuple(args or ()), dict(kwargs or {}))
        return await self._schedule_ops().update(
            schedule_id, workflow_name=None if workflow is None else _workflow_name(workflow), spec=spec, args=call,
            overlap=overlap, note=note, wait=wait, timeout=timeout)

    @overload
    async def pause_schedule(self, schedule_id: str, note: str | None = ..., *, wait: Literal[True] = ...,
                             timeout: float = ...) -> engine.ScheduleState: ...

    @overload
    async def pause_schedule(self, schedule_id: str, note: str | None = ..., *, wait: bool,
                             timeout: float = ...) -> engine.ScheduleState | None: ...

    async def pause_schedule(self, schedule_id: str, note: str | None = None, *, wait: bool = True,
                             timeout: float = 30.0) -> engine.ScheduleState | None:
        """Stop firing until resumed (``note`` replaces the schedule's note); runs already started go on.
        Returns the new state (None with ``wait=False``).

        Raises ``ScheduleError`` for no such schedule, ``TimeoutError`` as ``create_schedule``.
        """
        return await self._schedule_ops().set_paused(schedule_id, True, note=note, wait=wait, timeout=timeout)

    @overload
    async def resume_schedule(self, schedule_id: str, note: str | None = ..., *, wait: Literal[True] = ...,
                              timeout: float = ...) -> engine.ScheduleState: ...

    @overload
    async def resume_schedule(self, schedule_id: str, note: str | None = ..., *, wait: bool,
                              timeout: float = ...) -> engine.ScheduleState | None: ...

    async def resume_schedule(self, schedule_id: str, note: str | None = None, *, wait: bool = True,
                              timeout: float = 30.0) -> engine.ScheduleState | None:
        """Fire again, from the first fire time after now (the fires missed while paused are not made up:
        ``backfill_schedule`` runs them). Returns the new state (None with ``wait=False``).

        Raises ``ScheduleError`` for no such schedule, ``TimeoutError`` as ``create_schedule``.
        """
        return await self._schedule_ops().set_paused(schedule_id, False, note=note, wait=wait, timeout=timeout)

    async def delete_schedule(self, schedule_id: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Delete the schedule: no more fires; runs it started and that are still running go on.

        Raises ``ScheduleError`` for no such schedule (checked with ``wait`` only), ``TimeoutError`` as
        ``create_schedule``.
        """
        await self._schedule_ops().delete(schedule_id, wait=wait, timeout=timeout)

    async def trigger_schedule(self, schedule_id: str, *, wait: bool = True, timeout: float = 30.0) -> str:
        """Fire now, besides the regular fires; returns the run id the fire starts
        (``engine.trigger_run_id(id, request_id)``).

        The fire obeys the overlap policy like any other: while a run of the schedule is running it may be
        skipped, buffered (a buffered fire starts later under a run id of its own) or cancel that run. Look at
        ``get_schedule(id).recent_runs`` (and ``skipped``, ``buffered``) to see what happened.

        Raises ``ScheduleError`` for no such schedule, ``TimeoutError`` as ``create_schedule``.
        """
        return await self._schedule_ops().trigger(schedule_id, wait=wait, timeout=timeout)

    async def backfill_schedule(self, schedule_id: str, start: datetime | int, end: datetime | int, *,
                                timeout: float = 30.0) -> list[str]:
        """Fire every nominal time of the spec in ``[start, end)`` (aware datetimes or epoch ms) now, and
        return those fires' run ids, in time order (``engine.fire_run_id(id, nominal_ms, request_id)``).

        Always waits: the run ids follow from the spec the orchestrator applied the request with. Each fire
        obeys the overlap policy (under ``skip`` a fire that finds a run of the schedule running is dropped;
        ``allow_all`` starts them all at once). At most 1000 fires per request.

        Raises ``ScheduleError`` for no such schedule, ``start >= end``, a naive datetime or more than 1000
        fires; ``TimeoutError`` as ``create_schedule``.
        """
        return await self._schedule_ops().backfill(schedule_id, start, end, timeout=timeout)

    async def get_schedule(self, schedule_id: str) -> engine.ScheduleState | None:
        """The schedule's state (``next_fire_at``, ``running``, ``fires``, ``skipped``, ``recent_runs`` …),
        None when there is no such schedule. Reads its partition of the state topic to the end."""
        return await self._schedule_ops().get(schedule_id)

    async def list_schedules(self, workflow: str | Callable[..., object] | None = None) -> list[engine.ScheduleState]:
        """Every schedule (only those starting ``workflow`` when given), ordered by id. Reads every partition
        of the state topic to the end."""
        return await self._schedule_ops().states(None if workflow is None else _workflow_name(workflow))

    async def activate_schedules(self, source: Registry | str, /, *, timeout: float = 30.0) -> list[str]:
        """Make the schedules declared with ``@scheduled_workflow`` in ``source`` (a registry, or the name of a
        module to import) exist as declared, and return their ids in declaration order.

        Idempotent, meant for every deploy: a schedule that is missing is created; one whose workflow, spec,
        overlap policy or arguments differ from its declaration is updated (and re-armed from now); one that
        matches is left alone. A paused schedule stays paused and notes are kept; schedules no longer
        declared are not deleted (``delete_schedule`` does that).

        Raises:
            ScheduleError: a command refused (see ``create_schedule``); the schedules before it are done.
            TimeoutError: no answer within ``timeout`` s for one schedule (no processor running?).
            ModuleNotFoundError, KflowError: ``source`` names a module that cannot be imported or collected.
            UnknownWorkflowError, PayloadError: as for ``create_schedule``.
        """
        from streams._schedules import declarations  # here: streams._schedules imports this module

        ops = self._schedule_ops()
        return [(await ops.activate(declared, timeout=timeout)).schedule_id for declared in declarations(source)]

    def _schedule_ops(self) -> Schedules:
        from streams._schedules import Schedules  # here: streams._schedules imports this module

        return Schedules(self.settings, self.records, self.registry, self._connected_producer, self._clock)

    async def _connected_producer(self) -> AIOKafkaProducer:
        await self.connect()
        assert self._producer is not None
        return self._producer


def _workflow_name(workflow: str | Callable[..., object]) -> str:
    if isinstance(workflow, str):
        return workflow
    defn = getattr(workflow, "__kflow_workflow__", None)
    if not isinstance(defn, WorkflowDefinition):
        raise engine.UnknownWorkflowError(f"{workflow!r} is not decorated with @workflow")
    return defn.name


def _outcome(finished: RunFinished) -> object:
    if finished.status == "completed":
        return finished.result
    if finished.status == "failed" and finished.error is not None:
        raise engine.rebuild_exception(finished.error)
    if finished.status == "cancelled":
        detail = f": {finished.error.message}" if finished.error is not None and finished.error.message else ""
        raise CancellationError(f"run {finished.run_id} was cancelled{detail}")
    raise KflowError(f"run {finished.run_id} finished with status {finished.status!r} and no usable outcome")


def _run_info(run_id: str, events: list[HistoryEvent]) -> RunInfo | None:
    started = next((e for e in events if isinstance(e, engine.WorkflowStarted)), None)
    if started is None:
        return None
    info = RunInfo(run_id=run_id, workflow_name=started.workflow_name, status="running",
                   started_at=started.timestamp)
    end = next((e for e in reversed(events) if type(e) in _TERMINAL), None)
    if end is None:
        return info
    return dataclasses.replace(
        info, status=_TERMINAL[type(end)], finished_at=end.timestamp, result=getattr(end, "result", None),
        error=getattr(end, "error", None), next_run_id=getattr(end, "next_run_id", None))


_TERMINAL: Final[dict[type, str]] = {
    engine.WorkflowCompleted: "completed", engine.WorkflowFailed: "failed",
    engine.WorkflowCancelled: "cancelled", engine.WorkflowContinuedAsNew: "continued_as_new",
}
