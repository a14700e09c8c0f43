"""Schedule commands on the wire: the checks a command passes before it is sent, the wire form of its fields,
and how its answer is recognised among the records of the schedule's state and dead-letter partitions.

A schedule lives on the orchestrator partition of its key ``schedule:{id}``. The client produces each
command to that partition of ``<prefix>.inbox``; the orchestrator answers inside the transaction that
applies it: the schedule's new ``ScheduleState`` on ``<prefix>.state`` (same partition number, same key;
a tombstone once deleted) whose ``requests`` holds the command's request id, or a ``DeadLetter`` on
``<prefix>.dlq`` whose ``value`` is the sent bytes and whose ``reason`` says why it was refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from aiokafka import AIOKafkaProducer, TopicPartition

from engine import OverlapPolicy, Registry, ScheduleError, ScheduleSpec, ScheduleSpecError
from engine.runtime import CallArgs, Clock, DeclaredSchedule, ScheduleCommand, ScheduleState, schedule_key
from schemas import PayloadError, RecordCodec, SchemaError
from streams import kafka
from streams._record_limit import too_large
from streams._settings import Settings
from streams._topics import Topics
from streams.client._watch import PartitionWatch, read_to_end
from streams.kafka import partition_for

log = logging.getLogger(__name__)

KEY_PREFIX: Final = b"schedule:"
"""Keys of schedules on the state topic (it also holds run markers and checkpoints, skipped by reads)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class ScheduleAnswer:
    """What became of one schedule command: applied (``state``, None once deleted) or ``refused`` (why)."""

    state: ScheduleState | None
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleActivation:
    """What activating one declared schedule did (``outcome``) and the schedule's state after it."""

    schedule_id: str
    outcome: Literal["created", "updated", "unchanged"]
    state: ScheduleState


class ScheduleAnswerMatcher:
    """Recognises the answer to one sent ``ScheduleCommand`` among the records of its state and
    dead-letter partitions (a ``PartitionWatch`` match).

    The applied state is the first ``ScheduleState`` of the schedule whose ``requests`` holds the request
    id (a delete's: the tombstone of the key); a refusal is the dead letter holding exactly the sent bytes.
    """

    def __init__(self, records: RecordCodec, command: ScheduleCommand, sent: bytes, topics: Topics) -> None:
        self._records, self._command, self._sent, self._topics = records, command, sent, topics
        self._key = schedule_key(command.schedule_id).encode()

    def __call__(self, tp: TopicPartition, key: bytes | None, value: bytes | None) -> ScheduleAnswer | None:
        if key != self._key:
            return None
        if tp.topic == self._topics.state:
            return self._state(value)
        return None if value is None else self._dead_letter(value)

    def _state(self, value: bytes | None) -> ScheduleAnswer | None:
        if value is None:
            # Deleted (by this request, or by another one: gone either way). Any other command now gets
            # refused ("no schedule"): its dead letter is the answer.
            return ScheduleAnswer(None) if self._command.action == "delete" else None
        try:
            state = self._records.decode(value)
        except SchemaError:
            return None
        if isinstance(state, ScheduleState) and self._command.request_id in state.requests:
            return ScheduleAnswer(state)
        return None

    def _dead_letter(self, value: bytes) -> ScheduleAnswer | None:
        try:
            letter = self._records.codec.decode(value)
        except SchemaError:
            return None
        record = letter.record
        if letter.name != "DeadLetter" or record["value"] != self._sent or record["topic"] != self._topics.inbox:
            return None
        reason = str(record["reason"])
        restated = f"schedule {schedule_key(self._command.schedule_id)}: "  # the orchestrator names the key
        return ScheduleAnswer(None, refused=reason.removeprefix(restated))


def declarations(source: Registry | str) -> list[DeclaredSchedule]:
    """The schedules declared in a registry, or in the module named ``source`` (imported).

    Raises:
        ModuleNotFoundError, KflowError: as ``Registry.from_module``.
    """
    registry = Registry.from_module(source) if isinstance(source, str) else source
    return list(registry.schedules.values())


def is_declared(state: ScheduleState, declared: DeclaredSchedule) -> bool:
    """Whether a schedule is already what its declaration says: the same workflow, overlap policy, spec
    (compared as ``ScheduleSpec.to_wire()``) and arguments (compared as sent, where a tuple is a list)."""
    try:
        spec = ScheduleSpec.from_wire(json.loads(state.spec)).to_wire()
    except ValueError:  # unreadable (ScheduleSpecError and JSONDecodeError are ValueErrors): rewrite it
        return False
    return (
        state.workflow_name == declared.workflow_name
        and state.overlap == declared.overlap.value
        and spec == declared.spec.to_wire()
        and _same_call(state.args, declared.args)
    )


def _same_call(stored: CallArgs, declared: CallArgs) -> bool:
    if stored == declared:
        return True
    try:  # JSON payloads bring tuples back as lists: equal once both are in their JSON form
        return _json_call(stored) == _json_call(declared)
    except (TypeError, ValueError):  # not JSON (a cloudpickle payload): equal only as Python values
        return False


def _json_call(call: CallArgs) -> str:
    return json.dumps({"args": list(call.args), "kwargs": call.kwargs}, sort_keys=True, allow_nan=False)


def activated(
    declared: DeclaredSchedule, outcome: Literal["created", "updated", "unchanged"], state: ScheduleState
) -> ScheduleActivation:
    """The report of activating ``declared`` (logged)."""
    log.info("declared schedule %r of workflow %r %s", declared.schedule_id, declared.workflow_name, outcome)
    return ScheduleActivation(declared.schedule_id, outcome, state)


def check_id(schedule_id: object) -> None:
    """Refuse what cannot be a schedule id (before anything is sent).

    Raises:
        ScheduleError: not a non-empty string.
    """
    if not isinstance(schedule_id, str) or not schedule_id:
        raise ScheduleError(f"a schedule id must be a non-empty string, got {schedule_id!r}")


def spec_text(spec: object) -> str:
    """The wire form of a spec (``ScheduleCommand.spec``): JSON of ``ScheduleSpec.to_wire()``.

    Raises:
        ScheduleSpecError: ``spec`` is not a ``ScheduleSpec``.
    """
    if not isinstance(spec, ScheduleSpec):
        raise ScheduleSpecError(f"spec must be a ScheduleSpec, got {spec!r}")
    return json.dumps(spec.to_wire(), sort_keys=True)


def overlap_value(overlap: object) -> str:
    """The wire string of an overlap policy given as an ``OverlapPolicy`` or its value.

    Raises:
        ScheduleError: an unknown policy (the message lists the known ones).
    """
    try:
        return OverlapPolicy(overlap).value
    except ValueError:
        choices = ", ".join(p.value for p in OverlapPolicy)
        raise ScheduleError(f"unknown overlap policy {overlap!r} (one of {choices})") from None


def epoch_ms(name: str, value: datetime | int) -> int:
    """``value`` (epoch ms, or an aware datetime) as epoch milliseconds.

    Raises:
        ScheduleError: a naive datetime, or neither an int nor a datetime.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ScheduleError(f"{name}={value.isoformat()} is a naive datetime: give it a time zone")
        return (value - _EPOCH) // _ONE_MS
    raise ScheduleError(f"{name} must be epoch milliseconds (int) or an aware datetime, got {value!r}")


class ScheduleChannel:
    """Sends schedule commands to their schedule's inbox partition and reads schedule states back.

    Args:
        settings: servers and topic prefix.
        records: the codec commands are encoded with and states decoded with.
        producer: returns the client's connected producer.
        clock: stamps ``requested_at``.
    """

    def __init__(
        self,
        settings: Settings,
        records: RecordCodec,
        producer: Callable[[], Awaitable[AIOKafkaProducer]],
        clock: Clock,
    ) -> None:
        self.settings, self.records = settings, records
        self.topics = Topics(settings.topic_prefix)
        self._producer, self._clock = producer, clock

    async def state(self, schedule_id: str) -> ScheduleState | None:
        """The schedule's latest state on its partition of the state topic; None when there is none."""
        check_id(schedule_id)
        key = schedule_key(schedule_id).encode()
        producer = await self._producer()
        partition = partition_for(key, len(await producer.partitions_for(self.topics.inbox)))
        found = await self.latest([TopicPartition(self.topics.state, partition)], key)
        return found.get(key)

    async def states(self, workflow_name: str | None) -> list[ScheduleState]:
        """The latest state of every schedule (of ``workflow_name`` when given), ordered by id."""
        producer = await self._producer()
        tps = [TopicPartition(self.topics.state, p) for p in sorted(await producer.partitions_for(self.topics.state))]
        states = (await self.latest(tps, None)).values()
        chosen = (s for s in states if workflow_name is None or s.workflow_name == workflow_name)
        return sorted(chosen, key=lambda s: s.schedule_id)

    def command(
        self,
        schedule_id: str,
        action: str,
        *,
        workflow_name: str | None = None,
        args: CallArgs | None = None,
        spec: str | None = None,
        overlap: str | None = None,
        note: str | None = None,
        range_start: int | None = None,
        range_end: int | None = None,
    ) -> ScheduleCommand:
        """A ``ScheduleCommand`` with a fresh request id (uuid4 hex), stamped now."""
        check_id(schedule_id)
        return ScheduleCommand(
            schedule_id=schedule_id,
            action=action,
            request_id=uuid.uuid4().hex,
            workflow_name=workflow_name,
            args=args,
            spec=spec,
            overlap=overlap,
            note=note,
            range_start=range_start,
            range_end=range_end,
            requested_at=self._clock.now_ms(),
        )

    async def send(self, command: ScheduleCommand, *, wait: bool, timeout: float) -> ScheduleAnswer | None:
        """Produce ``command`` to its schedule's inbox partition and, with ``wait``, return the answer.

        Raises:
            ScheduleError: the orchestrator refused it (the reason; e.g. a delete of no schedule).
            TimeoutError: no answer within ``timeout`` seconds (it was sent and may still be applied).
            PayloadError: arguments the payload codec cannot carry, or a record over the size limit.
        """
        value = self.records.encode(command)
        if len(value) > kafka.MAX_MESSAGE_BYTES:
            raise PayloadError(too_large(f"the {command.action} of schedule {command.schedule_id!r}", len(value)))
        producer = await self._producer()
        key = schedule_key(command.schedule_id).encode()
        # Explicit partition: the answer is looked for on this partition number of .state and .dlq.
        partition = partition_for(key, len(await producer.partitions_for(self.topics.inbox)))
        if not wait:
            await producer.send_and_wait(self.topics.inbox, value, key=key, partition=partition)
            return None
        deadline = asyncio.get_running_loop().time() + timeout
        dlq = TopicPartition(self.topics.dlq, partition_for(key, len(await producer.partitions_for(self.topics.dlq))))
        state = TopicPartition(self.topics.state, partition)
        async with PartitionWatch(self.settings.kafka_target(), [state, dlq]) as watch:
            await producer.send_and_wait(self.topics.inbox, value, key=key, partition=partition)
            answer = await watch.first(ScheduleAnswerMatcher(self.records, command, value, self.topics), deadline)
        if answer is None:
            raise TimeoutError(
                f"no answer to the {command.action} of schedule {command.schedule_id!r} within "
                f"{timeout:g} s (is a kflow processor running on {self.topics.inbox}?); it was "
                "sent and may still be applied"
            )
        if answer.refused is not None:
            raise ScheduleError(answer.refused)
        return answer

    async def latest(self, tps: list[TopicPartition], only: bytes | None) -> dict[bytes, ScheduleState]:
        """The latest state per schedule key on ``tps`` (``only`` that key when given); tombstones drop it."""
        raw: dict[bytes, bytes | None] = {}

        def visit(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
            if key is not None and key.startswith(KEY_PREFIX) and (only is None or key == only):
                raw[key] = value

        await read_to_end(self.settings.kafka_target(), tps, visit)
        states: dict[bytes, ScheduleState] = {}
        for key, value in raw.items():
            if value is None:
                continue
            try:
                state = self.records.decode(value)
            except SchemaError as exc:
                log.warning("unreadable schedule state %r skipped: %s", key, exc)
                continue
            if isinstance(state, ScheduleState):
                states[key] = state
        return states
