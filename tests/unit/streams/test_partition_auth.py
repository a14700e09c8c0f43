"""The orchestrator's partition with ``KFLOW_SECRET`` set: step results and timers without a valid MAC are dead letters
that change nothing (the run waits for the real one); a child's completion from another run is a dead letter; every
``ForgetRun`` gets an answer ``kflow compact`` can wait for."""

from __future__ import annotations

import dataclasses

from partition_samples import reason, topics

from engine import Registry, start_child_workflow, step, workflow
from engine.runtime import (
    CallArgs,
    ChildWorkflowStarted,
    ForgetRun,
    RunFinished,
    StartWorkflow,
    StepResult,
    TimerFired,
)
from schemas import Codec, RecordCodec, RecordSigner
from streams.processors import PartitionLogic

SIGNER = RecordSigner(b"kflow-test-secret")
RECORDS = RecordCodec()


@step
async def echo(value: object) -> object:
    return value


@workflow(max_duration="1h")
async def bounded(value: object) -> object:
    return await echo(value)


@workflow
async def child(value: object) -> object:
    return await echo(value)


@workflow
async def parent(value: object) -> object:
    return await start_child_workflow(child, value)


REGISTRY = Registry([echo, bounded, child, parent])


def _logic(signer: RecordSigner | None = SIGNER) -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, signer=signer)


def _start(run_id: str, name: str = "bounded", key: str | None = None) -> bytes:
    call = CallArgs(("v",), {})
    return RECORDS.encode(
        StartWorkflow(run_id=run_id, workflow_name=name, args=call, idempotency_key=key, requested_at=1)
    )


def _result(run_id: str, value: object = "v", signer: RecordSigner | None = SIGNER) -> StepResult:
    result = StepResult(
        run_id=run_id, position=0, attempt=1, ok=True, result=value, worker="w", started_at=1, finished_at=2
    )
    return result if signer is None else signer.sign(result)


def _events(part: PartitionLogic, run_id: str) -> list[str]:
    return [type(e).__name__ for e in part.histories.events(run_id)]


def test_a_step_result_without_a_valid_mac_is_a_dead_letter_and_the_run_waits_for_the_real_one() -> None:
    part = _logic()
    part.process(b"r1", _start("r1"), 0, 10)
    before = _events(part, "r1")
    for offset, forged in enumerate(
        [
            _result("r1", "forged", signer=None),
            RecordSigner(b"another secret").sign(_result("r1", "forged", signer=None)),
            dataclasses.replace(_result("r1"), result="forged", attempt=2),  # a MAC lifted from another attempt
        ],
        start=1,
    ):
        out = part.process(b"r1", RECORDS.encode(forged), offset, 11)
        assert topics(out) == ["dlq"], forged
        assert reason(out[0]).startswith(f"unauthenticated StepResult for run r1 position 0 attempt {forged.attempt}")
    assert _events(part, "r1") == before
    done = part.process(b"r1", RECORDS.encode(_result("r1")), 9, 12)
    assert "completions" in topics(done) and part.finished == {"r1": "completed"}
    assert RECORDS.decode(next(o for o in done if o.topic == "completions").value).result == "v"


def test_a_forged_run_deadline_is_a_dead_letter_and_a_signed_one_fires() -> None:
    part = _logic()
    started = part.process(b"r1", _start("r1"), 0, 10)
    timer = next(o for o in started if o.topic == "timers")
    armed = RECORDS.decode(timer.value)
    fired = TimerFired(
        run_id="r1", timer_id="workflow_timeout:-1:1", position=-1, kind="workflow_timeout", fire_at=1, fired_at=2
    )
    assert armed.timer_id == fired.timer_id  # type: ignore[attr-defined]  # the id anyone can predict
    out = part.process(b"r1", RECORDS.encode(fired), 1, 11)
    assert topics(out) == ["dlq", "timers"]
    assert "unauthenticated TimerFired workflow_timeout:-1:1 for run r1" in reason(out[0])
    assert "r1" in part.histories and "r1" not in part.finished
    # The timer is armed again at the time the run recorded, never the forged one: a real fire by a timer processor
    # without the secret (during the switch to KFLOW_SECRET) is fired again, signed; a forged one changes nothing.
    again = RECORDS.decode(out[1].value)
    assert again == dataclasses.replace(armed, requested_at=11)  # type: ignore[type-var]
    genuine = SIGNER.sign(dataclasses.replace(fired, fire_at=armed.fire_at))  # type: ignore[attr-defined]
    ended = part.process(b"r1", RECORDS.encode(genuine), 2, 12)
    assert "completions" in topics(ended) and part.finished == {"r1": "failed"}


def test_an_undecodable_result_fails_the_step_only_when_it_is_signed() -> None:
    codec = Codec()
    part = _logic()
    part.process(b"r1", _start("r1"), 0, 10)
    fields = codec.decode(RECORDS.encode(_result("r1"))).record
    bad = {**fields, "result": {"codec": "no-such-codec", "data": b""}}  # decodes as a record, not as a value
    unsigned = part.process(b"r1", codec.encode("StepResult", {**bad, "mac": None}), 1, 11)
    assert topics(unsigned) == ["dlq"] and "unauthenticated StepResult" in reason(unsigned[0])
    assert _events(part, "r1") == ["WorkflowStarted", "TimerScheduled", "StepScheduled"]
    signed = part.process(b"r1", codec.encode("StepResult", bad), 2, 12)  # the worker's: the step failed
    assert topics(signed)[0] == "dlq" and reason(signed[0]).startswith("undecodable record")
    assert type(RECORDS.decode(signed[1].value)).__name__ == "StepFailed"


def test_without_a_secret_nothing_is_checked() -> None:
    part = _logic(signer=None)
    part.process(b"r1", _start("r1"), 0, 10)
    assert "completions" in topics(part.process(b"r1", RECORDS.encode(_result("r1", signer=None)), 1, 11))


def test_a_childs_completion_from_another_run_is_a_dead_letter() -> None:
    part = _logic()
    started = part.process(b"p1", _start("p1", "parent"), 0, 10)
    [event] = [e for e in map(RECORDS.decode, (o.value for o in started)) if isinstance(e, ChildWorkflowStarted)]
    forged = RunFinished(
        run_id="intruder",
        workflow_name="child",
        status="completed",
        result="forged",
        parent_run_id="p1",
        parent_position=0,
        started_at=1,
        finished_at=2,
    )
    out = part.process(b"p1", RECORDS.encode(forged), 1, 11)
    assert topics(out) == ["dlq"]
    assert f"where child run {event.child_run_id} was started" in reason(out[0])
    assert "p1" in part.histories and "p1" not in part.finished
    real = dataclasses.replace(forged, run_id=event.child_run_id, result="real")
    assert "completions" in topics(part.process(b"p1", RECORDS.encode(real), 2, 12))


def test_every_forget_run_is_answered() -> None:
    part = _logic(signer=None)
    for run_id, key in (("plain", None), ("keyed", "order-1")):
        part.process(run_id.encode(), _start(run_id, "child", key), 0, 10)
        part.process(run_id.encode(), RECORDS.encode(_result(run_id, signer=None)), 1, 11)
        assert run_id in part.finished
    forget = {run_id: RECORDS.encode(ForgetRun(run_id=run_id, requested_at=20)) for run_id in ("plain", "keyed")}
    assert [(o.topic, o.value) for o in part.process(b"plain", forget["plain"], 2, 20)] == [("state", None)]
    again = part.process(b"plain", forget["plain"], 3, 21)  # forgotten before: a dead letter says so
    assert topics(again) == ["dlq"] and "run plain is not a finished run of this partition" in reason(again[0])
    for offset in (4, 5):  # a keyed run keeps its forgotten marker, written again for each repeat
        [marker] = part.process(b"keyed", forget["keyed"], offset, 22)
        assert marker.topic == "state" and Codec().decode(marker.value).record["status"] == "forgotten"
    unknown = part.process(b"other", RECORDS.encode(ForgetRun(run_id="other", requested_at=20)), 6, 23)
    assert topics(unknown) == ["dlq"] and "not started under this topic prefix" in reason(unknown[0])
