"""The client's schedule commands: local validation, and recognising the orchestrator's answer (no network)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

import engine
from engine import OverlapPolicy, Registry, ScheduleError, ScheduleSpec, ScheduleSpecError, UnknownWorkflowError
from engine.runtime import CallArgs, ScheduleCommand, ScheduleState
from engine.testing import FakeClock
from schemas import RecordCodec
from streams import Client, Settings, Topics
from streams.client import (
    ScheduleAnswer,
    ScheduleAnswerMatcher,
    ScheduleChannel,
    check_id,
    epoch_ms,
    overlap_value,
    spec_text,
)
from streams.processors import dead_letter

RECORDS = RecordCodec()
TOPICS = Topics("p")
STATE, DLQ = TopicPartition(TOPICS.state, 1), TopicPartition(TOPICS.dlq, 1)
KEY = b"schedule:nightly"


def command(action: str = "pause", request_id: str = "req-1") -> ScheduleCommand:
    return ScheduleCommand(schedule_id="nightly", action=action, request_id=request_id, requested_at=5)


def state(*requests: str) -> ScheduleState:
    return ScheduleState(
        schedule_id="nightly",
        workflow_name="report",
        args=CallArgs(("x",), {}),
        spec=spec_text(ScheduleSpec(cron="0 9 * * *")),
        overlap="skip",
        paused=True,
        created_at=1,
        updated_at=2,
        generation=3,
        requests=requests,
    )


def matcher(sent: ScheduleCommand | None = None) -> ScheduleAnswerMatcher:
    sent = sent or command()
    return ScheduleAnswerMatcher(RECORDS, sent, RECORDS.encode(sent), TOPICS)


def parked(
    value: bytes, reason: str = "schedule schedule:nightly: no schedule 'nightly'", topic: str = TOPICS.inbox
) -> bytes:
    letter = dead_letter(
        RECORDS.codec,
        topic=topic,
        partition=1,
        offset=9,
        key=KEY,
        value=value,
        reason=reason,
        error_type="kflow.InvalidRecord",
    ).value
    assert letter is not None
    return letter


def test_the_first_state_holding_the_request_id_is_the_answer() -> None:
    applied = state("older", "req-1")
    assert matcher()(STATE, KEY, RECORDS.encode(applied)) == ScheduleAnswer(applied)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (KEY, RECORDS.encode(state("older"))),  # another request's state
        (b"schedule:other", RECORDS.encode(state("req-1"))),
        (b"checkpoint", b"\xc3\x01garbage"),
        (KEY, b"not a record"),
        (None, RECORDS.encode(state("req-1"))),
    ],
)
def test_other_state_records_are_not_the_answer(key: bytes | None, value: bytes) -> None:
    assert matcher()(STATE, key, value) is None


def test_a_tombstone_answers_a_delete_only() -> None:
    assert matcher(command("delete"))(STATE, KEY, None) == ScheduleAnswer(None)
    assert matcher(command("pause"))(STATE, KEY, None) is None  # its own refusal follows on the dlq


def test_the_dead_letter_of_the_sent_bytes_is_a_refusal_without_the_restated_key() -> None:
    sent = command()
    answer = matcher(sent)(DLQ, KEY, parked(RECORDS.encode(sent)))
    assert answer == ScheduleAnswer(None, refused="no schedule 'nightly'")


@pytest.mark.parametrize(
    "value",
    [
        parked(RECORDS.encode(command(request_id="req-2"))),  # another command of the schedule
        parked(RECORDS.encode(command()), topic="q.inbox"),
        RECORDS.encode(state("req-1")),  # not a dead letter
    ],
)
def test_other_dead_letters_are_not_the_answer(value: bytes) -> None:
    assert matcher()(DLQ, KEY, value) is None


def test_ids_policies_specs_and_instants_are_checked_before_sending() -> None:
    check_id("a:b c")
    for bad in ("", None, 3):
        with pytest.raises(ScheduleError, match="non-empty string"):
            check_id(bad)
    assert overlap_value(OverlapPolicy.BUFFER_ALL) == overlap_value("buffer_all") == "buffer_all"
    with pytest.raises(ScheduleError, match=r"unknown overlap policy 'sometimes' \(one of skip, buffer_one"):
        overlap_value("sometimes")
    with pytest.raises(ScheduleSpecError, match="spec must be a ScheduleSpec"):
        spec_text({"cron": "0 9 * * *"})
    assert ScheduleSpec.from_wire(__import__("json").loads(spec_text(ScheduleSpec(interval="5m")))) == ScheduleSpec(
        interval=timedelta(minutes=5)
    )
    assert epoch_ms("start", 1234) == 1234
    assert epoch_ms("start", datetime(1970, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == 0
    with pytest.raises(ScheduleError, match="naive datetime"):
        epoch_ms("start", datetime(2025, 1, 1))
    with pytest.raises(ScheduleError, match="epoch milliseconds"):
        epoch_ms("end", "2025-01-01")  # type: ignore[arg-type]


def test_a_command_has_a_fresh_request_id_and_the_clock_time() -> None:
    async def no_producer() -> AIOKafkaProducer:
        raise AssertionError("nothing is sent")

    channel = ScheduleChannel(Settings(), RECORDS, no_producer, FakeClock(start_ms=77))
    first, second = channel.command("s", "trigger"), channel.command("s", "trigger")
    assert first.request_id != second.request_id and len(first.request_id) == 32
    assert dataclasses.replace(first, request_id="x") == ScheduleCommand(
        schedule_id="s", action="trigger", request_id="x", requested_at=77
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.schedules.create("s", "report", ScheduleSpec(cron="0 9 * * *"), overlap="sometimes"),
        lambda c: c.schedules.create("", "report", ScheduleSpec(cron="0 9 * * *")),
        lambda c: c.schedules.create("s", "report", "0 9 * * *"),
        lambda c: c.schedules.create("s", "unknown", ScheduleSpec(cron="0 9 * * *")),
        lambda c: c.schedules.update("s", overlap="never"),
        lambda c: c.schedules.update("s", workflow="unknown"),
        lambda c: c.schedules.backfill("s", 10, 10),
        lambda c: c.schedules.backfill("s", datetime(2025, 1, 1), 10),
        lambda c: c.schedules.trigger(""),
    ],
)
async def test_obvious_mistakes_never_reach_kafka(call: object) -> None:
    @engine.workflow(name="report")
    async def report() -> None: ...

    client = Client("127.0.0.1:1", registry=Registry([report]))  # nothing listens there: a send would hang
    with pytest.raises((ScheduleError, ScheduleSpecError, UnknownWorkflowError)):
        await call(client)  # type: ignore[operator]
