"""The orchestrator's per-partition decisions without Kafka: routing, dedup, dead letters, reverts, cache."""

from __future__ import annotations

import pytest
from partition_samples import RECORDS, REGISTRY, logic, reason, result, resume, start, topics

import engine
from engine import runtime
from engine.runtime import CallArgs, StartWorkflow
from schemas import Codec
from streams.processors import PartitionLogic


@pytest.mark.parametrize("cache_size", [100, 0])
def test_a_run_flows_through_history_tasks_and_completions(cache_size: int) -> None:
    part = logic(cache_size)
    emitted = part.process(b"r1", start("r1"), 0, 10)
    assert topics(emitted) == ["history", "history", "tasks"]
    emitted += part.process(b"r1", result("r1", 0, "v"), 1, 11)
    assert topics(emitted[3:]) == ["history", "history", "tasks"]
    outputs = part.process(b"r1", result("r1", 1, "v"), 2, 12)
    assert topics(outputs) == ["history", "history", "completions", "state"]
    finished = RECORDS.decode(outputs[-2].value)
    assert isinstance(finished, runtime.RunFinished) and finished.result == "v"
    history = [RECORDS.decode(o.value) for o in emitted + outputs if o.topic == "history"]
    assert [e.seq for e in history] == list(range(1, 7))  # type: ignore[attr-defined]
    assert part.replays == (2 if cache_size == 0 else 0)
    # a finished run keeps only its status; late inputs and a repeated start change nothing
    assert part.finished == {"r1": "completed"} and "r1" not in part.histories
    assert part.process(b"r1", result("r1", 1, "v"), 3, 13) == []
    assert part.process(b"r1", start("r1"), 4, 14) == []


def test_restore_keeps_running_runs_and_only_the_status_of_finished_ones() -> None:
    live = logic()
    events = [o for o in live.process(b"done", start("done"), 0, 1) if o.topic == "history"]
    events += [o for o in live.process(b"done", result("done", 0, "v"), 1, 2) if o.topic == "history"]
    events += [o for o in live.process(b"done", result("done", 1, "v"), 2, 3) if o.topic == "history"]
    events += [o for o in live.process(b"open", start("open"), 3, 4) if o.topic == "history"]
    restored = logic()
    for out in events + events[:2]:  # duplicates from an at-least-once write are dropped by seq
        restored.restore(RECORDS.decode(out.value))  # type: ignore[arg-type]
    assert restored.finished == {"done": "completed"}
    assert [e.seq for e in restored.histories["open"]] == [1, 2]
    assert topics(restored.process(b"open", result("open", 0, "v"), 9, 5)) == ["history", "history", "tasks"]


def test_duplicate_start_and_duplicate_result_change_nothing() -> None:
    part = logic()
    part.process(b"r1", start("r1"), 0, 10)
    assert part.process(b"r1", start("r1"), 1, 11) == []
    part.process(b"r1", result("r1", 0, "v"), 2, 12)
    assert part.process(b"r1", result("r1", 0, "v"), 3, 13) == []
    assert len(part.histories["r1"]) == 4


def test_bad_records_become_dead_letters_with_reasons() -> None:
    part = logic()
    dead = [
        part.process(b"k", b"\x00garbage", 0, 1),
        part.process(b"other", start("r1"), 1, 1),
        part.process(b"r9", result("r9", 0, 1), 2, 1),
        part.process(b"r2", start("r2", "nope"), 3, 1),
    ]
    reasons = [Codec().decode(outs[0].value).record["reason"] for outs in dead]
    assert "undecodable record" in reasons[0]
    assert "is not the run id" in reasons[1]
    assert "no run r9" in reasons[2]
    assert "nope" in reasons[3] and topics(dead[3]) == ["dlq", "completions"]
    assert all(outs[0].topic == "dlq" for outs in dead)


def test_an_oversized_output_is_parked_and_the_run_state_reverted() -> None:
    part = logic()
    part.process(b"r1", start("r1", "wide", 600_000), 0, 1)
    before = list(part.histories["r1"])
    outputs = part.process(b"r1", result("r1", 0, 1), 1, 2)
    why = reason(outputs[0])
    assert topics(outputs) == ["dlq"] and "the history record processing it produced is too large" in why
    assert "over the 1,000,000-byte record limit (MAX_MESSAGE_BYTES); the run waits on this input" in why
    assert part.histories["r1"] == before
    assert "r1" not in part.cache.runs


def test_a_workflow_result_over_the_record_limit_fails_the_run_naming_the_limit() -> None:
    part = logic()
    part.process(b"r1", start("r1", "big", 2_000_000), 0, 1)
    outputs = part.process(b"r1", result("r1", 0, 1), 1, 2)
    assert topics(outputs) == ["history", "history", "completions", "state"]  # no dead letter: the run failed
    finished = RECORDS.decode(outputs[2].value)
    assert isinstance(finished, runtime.RunFinished) and finished.status == "failed" and finished.error is not None
    assert finished.error.type == "schemas._errors.PayloadError"
    assert "the workflow's result is too large: 2,000,0" in finished.error.message
    assert "over the 1,000,000-byte record limit (MAX_MESSAGE_BYTES)" in finished.error.message


def test_the_cache_is_bounded_and_eviction_is_invisible() -> None:
    part = logic(cache_size=2)
    for n in range(5):
        part.process(f"r{n}".encode(), start(f"r{n}"), n, 1)
    assert len(part.cache.runs) == 2 and part.cache.evictions == 3
    outputs = part.process(b"r0", result("r0", 0, "v"), 9, 2)  # r0 was evicted: replayed from history
    assert topics(outputs) == ["history", "history", "tasks"] and part.replays == 1


def test_an_unknown_child_workflow_fails_back_to_its_parent() -> None:
    part = logic()
    start_child = RECORDS.encode(
        StartWorkflow(
            run_id="kid",
            workflow_name="nope",
            args=CallArgs((), {}),
            parent_run_id="mom",
            parent_position=2,
            requested_at=1,
        )
    )
    outputs = part.process(b"kid", start_child, 0, 1)
    assert topics(outputs) == ["dlq", "completions", "inbox"]
    assert outputs[2].key == b"mom"
    finished = RECORDS.decode(outputs[2].value)
    assert isinstance(finished, runtime.RunFinished) and finished.status == "failed"
    assert finished.parent_position == 2


def test_the_hosts_event_limits_apply_to_workflows_without_their_own() -> None:
    part = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, engine.EventLimits(soft=2, hard=3))
    part.process(b"r1", start("r1"), 0, 1)  # WorkflowStarted, StepScheduled
    outputs = part.process(b"r1", result("r1", 0, "v"), 1, 2)  # would reach 4 > 3: the run fails instead
    finished = [RECORDS.decode(o.value) for o in outputs if o.topic == "completions"]
    assert len(finished) == 1 and isinstance(finished[0], runtime.RunFinished)
    assert finished[0].status == "failed" and finished[0].error is not None
    assert "EventLimitExceededError" in finished[0].error.type


def test_a_hook_payload_that_cannot_be_delivered_is_a_dead_letter_with_the_reason() -> None:
    part = logic()
    part.process(b"r1", start("r1"), 0, 10)
    foreign = part.process(b"r1", resume("r1", "other:approval"), 1, 11)
    assert topics(foreign) == ["dlq"] and "does not belong to run r1" in reason(foreign[0])
    queued = part.process(b"r1", resume("r1", "r1:approval", {"ok": True}), 2, 12)
    assert topics(queued) == ["history"]  # no hook waits yet: kept for the hook() call
    part.process(b"r1", result("r1", 0, "v"), 3, 13)
    part.process(b"r1", result("r1", 1, "v"), 4, 14)
    late = part.process(b"r1", resume("r1", "r1:approval"), 5, 15)
    assert topics(late) == ["dlq"] and "run r1 is completed" in reason(late[0])
    unknown = part.process(b"r9", resume("r9", "r9:approval"), 6, 16)
    assert topics(unknown) == ["dlq"] and "no run r9" in reason(unknown[0])
