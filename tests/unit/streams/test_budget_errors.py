"""Budgets and the record limit, as the sender hears them (no network): an early hook payload past its run's budget is
refused with the reason, every record over the limit is refused naming it in one wording, and the client's cache of
completions stays within its bytes."""

from __future__ import annotations

import pytest
from partition_samples import RECORDS, REGISTRY, resume, start, topics

from engine import EventLimits, Registry, ScheduleSpec, hook, workflow
from engine.runtime import RunFinished
from schemas import PayloadError
from streams import Client, HookDeliveryError
from streams.client import CompletionsReader, HookAnswerMatcher
from streams.processors import PartitionLogic

LIMIT = "over the 1,000,000-byte record limit (MAX_MESSAGE_BYTES)"


@workflow
async def waits(value: object) -> object:
    return await hook("first")


def _client(registry: Registry | None = None) -> Client:
    return Client("127.0.0.1:1", registry=registry)


def test_an_early_payload_past_the_budget_is_refused_and_the_sender_hears_why() -> None:
    limits = EventLimits(early_hook_bytes=300)
    part = PartitionLogic(Registry([waits]), RECORDS, "p.inbox", 0, 100, limits)
    part.process(b"r1", start("r1", "waits"), 0, 10)
    assert topics(part.process(b"r1", resume("r1", "r1:later", "x" * 200), 1, 11)) == ["history"]  # queued
    sent = resume("r1", "r1:later#2", "x" * 200)
    outputs = part.process(b"r1", sent, 2, 12)
    assert topics(outputs) == ["dlq"]
    answer = HookAnswerMatcher(RECORDS, sent, "p.inbox", 2).dead_letter(outputs[0].key, outputs[0].value)
    assert answer is not None and answer.outcome == "refused"
    error = HookDeliveryError.refused("r1:later#2", answer.reason)
    assert type(error) is HookDeliveryError  # none of pyworkflow's cases: the payload may be sent again later
    assert "early hook payload for token 'r1:later#2' refused: run r1 has not reached that hook() call" in error.reason
    assert "over the budget of 300 bytes per run (EventLimits.early_hook_bytes, KFLOW_EARLY_HOOK_BYTES)" in error.reason
    assert topics(part.process(b"r1", resume("r1", "r1:first", "x" * 5_000), 3, 13))[-2:] == ["completions", "state"]


async def test_every_record_over_the_limit_is_refused_before_sending_in_one_wording() -> None:
    with pytest.raises(PayloadError) as started:
        await _client().start("deliver", "x" * 1_000_000)
    assert str(started.value).startswith("the start of workflow 'deliver' (its arguments) is too large: 1,000,")
    with pytest.raises(PayloadError) as resumed:
        await _client().resume_hook("run:approval", "x" * 1_000_000)
    assert str(resumed.value).startswith("the hook payload for run:approval is too large: 1,000,")
    with pytest.raises(PayloadError) as scheduled:
        await _client(Registry([waits])).schedules.create("s", "waits", ScheduleSpec(interval="1h"), "x" * 1_000_000)
    assert str(scheduled.value).startswith("the create of schedule 's' is too large: 1,000,")
    assert all(LIMIT in str(e.value) for e in (started, resumed, scheduled))


def test_the_orchestrator_refuses_step_arguments_over_the_limit_at_the_call() -> None:
    part = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)
    outputs = part.process(b"r1", start("r1", "twice", "x" * 990_000), 0, 10)  # its ExecuteStep would be over
    assert topics(outputs) == ["history", "history", "completions", "state"]  # raised at the call: the run failed
    finished = RECORDS.decode(outputs[2].value)
    assert isinstance(finished, RunFinished) and finished.error is not None
    assert finished.error.message.startswith("the arguments payload of the call is too large: 990,0")
    assert LIMIT in finished.error.message


def test_the_client_keeps_completions_within_its_bytes() -> None:
    reader = CompletionsReader("127.0.0.1:1", "p.completions", max_bytes=10_000)
    for n in range(50):  # the tail delivers results nobody waits for: the least recently used are dropped
        reader._deliver(f"r{n}".encode(), b"x" * 1_000)
        assert reader.held_bytes <= 10_000
    assert reader.evictions >= 40
    reader.expect("mine")  # a run this client started: its completion is kept until claimed, within the bound too
    reader._deliver(b"mine", b"y" * 6_000)
    reader._deliver(b"other", b"z" * 6_000)
    assert reader.held_bytes <= 10_000
    reader._deliver(b"huge", b"h" * 20_000)  # more than the bound alone: not kept
    assert reader.held_bytes == 6_000  # "mine", unclaimed
    reader.expect("mine too")
    evictions = reader.evictions
    reader._deliver(b"mine too", b"m" * 6_000)  # unclaimed ones past the bound: the oldest dropped (a scan finds it)
    assert reader.held_bytes == 6_000 and reader.evictions == evictions + 1
