"""Schedules through the client (``client.schedules``): build a ``ScheduleCommand``, send it to the schedule's
inbox partition, wait for the orchestrator's answer (``streams.client._schedule_commands``). Reads (``get``,
``list``) take the latest value per ``schedule:`` key of the compacted state topic.

Activation (``activate``) makes the schedules declared with ``@scheduled_workflow`` exist as declared: a
create when missing, an update when they differ, nothing otherwise.
"""

from __future__ import annotations

import builtins
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, overload

from aiokafka import AIOKafkaProducer

from engine import OverlapPolicy, Registry, ScheduleError, ScheduleSpec, fire_run_id, trigger_run_id
from engine.runtime import CallArgs, Clock, DeclaredSchedule, ScheduleCommand, ScheduleState
from schemas import RecordCodec
from streams._settings import Settings
from streams._topics import Topics
from streams.client._run_ids import workflow_name_of
from streams.client._schedule_commands import (
    ScheduleActivation,
    ScheduleChannel,
    activated,
    declarations,
    epoch_ms,
    is_declared,
    overlap_value,
    spec_text,
)

log = logging.getLogger(__name__)


class Schedules:
    """The schedules of one ``Client``: ``client.schedules.create(...)`` and so on.

    Every mutation waits (``timeout`` s) until the orchestrator applied it and returns the new state, or
    raises ``ScheduleError`` with the orchestrator's reason; ``wait=False`` returns None as soon as Kafka has
    the command (backfill always waits). ``TimeoutError`` means no processor answered (the command may
    still be applied).

    Args:
        settings: servers and topic prefix.
        records: the codec commands are encoded with and states decoded with.
        registry: when given, workflow names it does not know are refused before sending.
        producer: returns the client's connected producer.
        clock: stamps ``requested_at``.
    """

    def __init__(
        self,
        settings: Settings,
        records: RecordCodec,
        registry: Registry | None,
        producer: Callable[[], Awaitable[AIOKafkaProducer]],
        clock: Clock,
    ) -> None:
        self.settings, self.records, self.registry = settings, records, registry
        self.topics = Topics(settings.topic_prefix)
        self._channel = ScheduleChannel(settings, records, producer, clock)

    @overload
    async def create(
        self,
        schedule_id: str,
        workflow: str | Callable[..., object],
        spec: ScheduleSpec,
        /,
        *args: object,
        overlap: OverlapPolicy | str = ...,
        note: str | None = ...,
        wait: Literal[True] = ...,
        timeout: float = ...,
        **kwargs: object,
    ) -> ScheduleState: ...

    @overload
    async def create(
        self,
        schedule_id: str,
        workflow: str | Callable[..., object],
        spec: ScheduleSpec,
        /,
        *args: object,
        overlap: OverlapPolicy | str = ...,
        note: str | None = ...,
        wait: bool,
        timeout: float = ...,
        **kwargs: object,
    ) -> ScheduleState | None: ...

    async def create(
        self,
        schedule_id: str,
        workflow: str | Callable[..., object],
        spec: ScheduleSpec,
        /,
        *args: object,
        overlap: OverlapPolicy | str = "skip",
        note: str | None = None,
        wait: bool = True,
        timeout: float = 30.0,
        **kwargs: object,
    ) -> ScheduleState | None:
        """Create schedule ``schedule_id``: start ``workflow(*args, **kwargs)`` at each fire time of ``spec``.

        Each fire is an idempotent start of a run with a derived id (``engine.fire_run_id(id, nominal_ms)``)
        and ``parent_run_id = "schedule:{id}"``. ``overlap`` (an ``OverlapPolicy`` or its value) says what a
        fire does while a run the schedule started is still running. Returns the state once the orchestrator
        applied the command (``next_fire_at`` is the first nominal fire); ``wait=False`` returns None as soon
        as Kafka has it. ``overlap``, ``note``, ``wait`` and ``timeout`` cannot be workflow keyword arguments
        (pass those with ``update(kwargs=...)``).

        Raises:
            ScheduleError: the id exists already, an unknown overlap policy (before sending), another refusal.
            ScheduleSpecError: ``spec`` is not a ``ScheduleSpec`` (building a bad one raises it too).
            UnknownWorkflowError, PayloadError: as for ``Client.start``.
            TimeoutError: no answer within ``timeout`` s (no processor running? the command may still apply).
        """
        return await self._create(
            schedule_id,
            workflow_name_of(workflow),
            spec,
            CallArgs(args, kwargs),
            overlap=overlap,
            note=note,
            wait=wait,
            timeout=timeout,
        )

    @overload
    async def update(
        self,
        schedule_id: str,
        *,
        workflow: str | Callable[..., object] | None = ...,
        spec: ScheduleSpec | None = ...,
        args: tuple[object, ...] | None = ...,
        kwargs: dict[str, object] | None = ...,
        overlap: OverlapPolicy | str | None = ...,
        note: str | None = ...,
        wait: Literal[True] = ...,
        timeout: float = ...,
    ) -> ScheduleState: ...

    @overload
    async def update(
        self,
        schedule_id: str,
        *,
        workflow: str | Callable[..., object] | None = ...,
        spec: ScheduleSpec | None = ...,
        args: tuple[object, ...] | None = ...,
        kwargs: dict[str, object] | None = ...,
        overlap: OverlapPolicy | str | None = ...,
        note: str | None = ...,
        wait: bool,
        timeout: float = ...,
    ) -> ScheduleState | None: ...

    async def update(
        self,
        schedule_id: str,
        *,
        workflow: str | Callable[..., object] | None = None,
        spec: ScheduleSpec | None = None,
        args: tuple[object, ...] | None = None,
        kwargs: dict[str, object] | None = None,
        overlap: OverlapPolicy | str | None = None,
        note: str | None = None,
        wait: bool = True,
        timeout: float = 30.0,
    ) -> ScheduleState | None:
        """Change what is given (None keeps it) and re-arm the schedule from now (the next fire is the first
        after now; a paused schedule stays paused). ``args`` and ``kwargs`` replace the call's arguments
        together: giving one empties the other. Returns the new state (None with ``wait=False``).

        Raises: as ``create``; ``ScheduleError`` also for no such schedule.
        """
        workflow_name = None if workflow is None else workflow_name_of(workflow)
        if workflow_name is not None and self.registry is not None:
            self.registry.workflow(workflow_name)
        call = None if args is None and kwargs is None else CallArgs(tuple(args or ()), dict(kwargs or {}))
        spec_wire = None if spec is None else spec_text(spec)
        overlap_wire = None if overlap is None else overlap_value(overlap)
        command = self._channel.command(
            schedule_id,
            "update",
            workflow_name=workflow_name,
            args=call,
            spec=spec_wire,
            overlap=overlap_wire,
            note=note,
        )
        return await self._mutate(command, wait, timeout)

    @overload
    async def pause(
        self, schedule_id: str, note: str | None = ..., *, wait: Literal[True] = ..., timeout: float = ...
    ) -> ScheduleState: ...

    @overload
    async def pause(
        self, schedule_id: str, note: str | None = ..., *, wait: bool, timeout: float = ...
    ) -> ScheduleState | None: ...

    async def pause(
        self, schedule_id: str, note: str | None = None, *, wait: bool = True, timeout: float = 30.0
    ) -> ScheduleState | None:
        """Stop firing until resumed (``note`` replaces the schedule's note); runs already started go on.
        Returns the new state (None with ``wait=False``).

        Raises ``ScheduleError`` for no such schedule, ``TimeoutError`` as ``create``.
        """
        return await self._mutate(self._channel.command(schedule_id, "pause", note=note), wait, timeout)

    @overload
    async def resume(
        self, schedule_id: str, note: str | None = ..., *, wait: Literal[True] = ..., timeout: float = ...
    ) -> ScheduleState: ...

    @overload
    async def resume(
        self, schedule_id: str, note: str | None = ..., *, wait: bool, timeout: float = ...
    ) -> ScheduleState | None: ...

    async def resume(
        self, schedule_id: str, note: str | None = None, *, wait: bool = True, timeout: float = 30.0
    ) -> ScheduleState | None:
        """Fire again, from the first fire time after now (the fires missed while paused are not made up:
        ``backfill`` runs them). Returns the new state (None with ``wait=False``).

        Raises ``ScheduleError`` for no such schedule, ``TimeoutError`` as ``create``.
        """
        return await self._mutate(self._channel.command(schedule_id, "resume", note=note), wait, timeout)

    async def delete(self, schedule_id: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Delete the schedule: no more fires; runs it started and that are still running go on.

        Raises ``ScheduleError`` for no such schedule (checked with ``wait`` only), ``TimeoutError`` as
        ``create``.
        """
        await self._mutate(self._channel.command(schedule_id, "delete"), wait, timeout)

    async def trigger(self, schedule_id: str, *, wait: bool = True, timeout: float = 30.0) -> str:
        """Fire now, besides the regular fires; returns the run id the fire starts
        (``engine.trigger_run_id(id, request_id)``).

        The fire obeys the overlap policy like any other: while a run of the schedule is running it may be
        skipped, buffered (a buffered fire starts later under a run id of its own) or cancel that run. Look at
        ``get(id).recent_runs`` (and ``skipped``, ``buffered``) to see what happened.

        Raises ``ScheduleError`` for no such schedule, ``TimeoutError`` as ``create``.
        """
        command = self._channel.command(schedule_id, "trigger")
        await self._channel.send(command, wait=wait, timeout=timeout)
        return trigger_run_id(schedule_id, command.request_id)

    async def backfill(
        self, schedule_id: str, start: datetime | int, end: datetime | int, *, timeout: float = 30.0
    ) -> builtins.list[str]:
        """Fire every nominal time of the spec in ``[start, end)`` (aware datetimes or epoch ms) now, and
        return those fires' run ids, in time order (``engine.fire_run_id(id, nominal_ms, request_id)``).

        Always waits: the run ids follow from the spec the orchestrator applied the request with. Each fire
        obeys the overlap policy (under ``skip`` a fire that finds a run of the schedule running is dropped;
        ``allow_all`` starts them all at once). At most 1000 fires per request.

        Raises ``ScheduleError`` for no such schedule, ``start >= end``, a naive datetime or more than 1000
        fires; ``TimeoutError`` as ``create``.
        """
        start_ms, end_ms = epoch_ms("start", start), epoch_ms("end", end)
        if start_ms >= end_ms:
            raise ScheduleError(f"backfill needs start < end, got [{start_ms}, {end_ms}) (epoch ms)")
        command = self._channel.command(schedule_id, "backfill", range_start=start_ms, range_end=end_ms)
        answer = await self._channel.send(command, wait=True, timeout=timeout)
        assert answer is not None and answer.state is not None
        spec = ScheduleSpec.from_wire(json.loads(answer.state.spec))
        # The orchestrator applied the request with this very spec, so the range is within its limit.
        nominals = spec.fires_between(start_ms, end_ms, sys.maxsize)
        return [fire_run_id(schedule_id, nominal, command.request_id) for nominal in nominals]

    async def activate(self, source: Registry | str, /, *, timeout: float = 30.0) -> builtins.list[str]:
        """Make the schedules declared with ``@scheduled_workflow`` in ``source`` (a registry, or the name of a
        module to import) exist as declared, and return their ids in declaration order.

        Idempotent, meant for every deploy: a schedule that is missing is created; one whose workflow, spec,
        overlap policy or arguments differ from its declaration is updated (and re-armed from now); one that
        matches is left alone. A paused schedule stays paused and notes are kept; schedules no longer
        declared are not deleted (``delete`` does that).

        Raises:
            ScheduleError: a command refused (see ``create``); the schedules before it are done.
            TimeoutError: no answer within ``timeout`` s for one schedule (no processor running?).
            ModuleNotFoundError, KflowError: ``source`` names a module that cannot be imported or collected.
            UnknownWorkflowError, PayloadError: as for ``create``.
        """
        return [
            (await self.activate_declared(declared, timeout=timeout)).schedule_id for declared in declarations(source)
        ]

    async def activate_declared(self, declared: DeclaredSchedule, *, timeout: float = 30.0) -> ScheduleActivation:
        """Make the declared schedule exist as declared: create it when missing, update it when its workflow,
        spec, overlap policy or arguments differ (which re-arms it from now), else leave it alone. Its note
        and whether it is paused are the operator's: kept.

        Raises: as ``create`` and ``update``. (``activate`` does this for every declaration of a module.)
        """
        current = await self.get(declared.schedule_id)
        if current is None:
            try:
                created = await self._create(
                    declared.schedule_id,
                    declared.workflow_name,
                    declared.spec,
                    declared.args,
                    overlap=declared.overlap,
                    note=None,
                    timeout=timeout,
                )
            except ScheduleError:
                # Refused: another activation (processors deploying together) may have created it since.
                current = await self.get(declared.schedule_id)
                if current is None:
                    raise
            else:
                assert created is not None
                return activated(declared, "created", created)
        if is_declared(current, declared):
            return activated(declared, "unchanged", current)
        updated = await self.update(
            declared.schedule_id,
            workflow=declared.workflow_name,
            spec=declared.spec,
            args=declared.args.args,
            kwargs=declared.args.kwargs,
            overlap=declared.overlap,
            timeout=timeout,
        )
        assert updated is not None
        return activated(declared, "updated", updated)

    async def _create(
        self,
        schedule_id: str,
        workflow_name: str,
        spec: ScheduleSpec,
        args: CallArgs,
        *,
        overlap: OverlapPolicy | str,
        note: str | None,
        wait: bool = True,
        timeout: float,
    ) -> ScheduleState | None:
        if self.registry is not None:
            self.registry.workflow(workflow_name)
        spec_wire, overlap_wire = spec_text(spec), overlap_value(overlap)
        command = self._channel.command(
            schedule_id,
            "create",
            workflow_name=workflow_name,
            args=args,
            spec=spec_wire,
            overlap=overlap_wire,
            note=note,
        )
        return await self._mutate(command, wait, timeout)

    async def _mutate(self, command: ScheduleCommand, wait: bool, timeout: float) -> ScheduleState | None:
        """Send ``command``; the schedule's state once applied (None without ``wait``, and after a delete)."""
        answer = await self._channel.send(command, wait=wait, timeout=timeout)
        return None if answer is None else answer.state

    async def get(self, schedule_id: str) -> ScheduleState | None:
        """The schedule's state (``next_fire_at``, ``running``, ``fires``, ``skipped``, ``recent_runs`` …),
        None when there is no such schedule. Reads its partition of the state topic to the end."""
        return await self._channel.state(schedule_id)

    async def list(self, workflow: str | Callable[..., object] | None = None) -> builtins.list[ScheduleState]:
        """Every schedule (only those starting ``workflow`` when given), ordered by id. Reads every partition
        of the state topic to the end."""
        return await self._channel.states(None if workflow is None else workflow_name_of(workflow))
