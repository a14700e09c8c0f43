"""Poison code on the orchestrator's partition: the run fails (or its input is parked), the partition flows on."""

from __future__ import annotations

import asyncio

from partition_samples import RECORDS, reason, result, start, topics

from engine import EventLimits, Registry, hook, runtime, step, workflow
from engine.runtime import ResumeHook
from streams.processors import PartitionLogic


@step
async def echo(value: object) -> object:
    return value


@workflow
async def quits(value: object) -> None:
    await echo(value)
    raise SystemExit(value)


@workflow(event_limits=EventLimits(activation_steps=1_000))
async def spins(value: object) -> None:
    await echo(value)
    while True:
        await asyncio.sleep(0)


class ExitingSchema:
    """A payload schema whose validation (user code, run outside the workflow loop) raises SystemExit."""

    @classmethod
    def model_validate(cls, payload: object) -> object:
        raise SystemExit("schema says bye")


@workflow
async def waits(value: object) -> object:
    return await hook("go", payload_schema=ExitingSchema)


@workflow
async def twice(value: object) -> object:
    return await echo(await echo(value))


REGISTRY = Registry([echo, quits, spins, waits, twice])


def logic() -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)


def finished(outputs: list) -> runtime.RunFinished:  # type: ignore[type-arg]
    [completion] = [RECORDS.decode(o.value) for o in outputs if o.topic == "completions"]
    assert isinstance(completion, runtime.RunFinished)
    return completion


def test_poison_workflow_code_fails_its_run_and_the_partition_flows_on() -> None:
    part = logic()
    for run_id, name in (("q", "quits"), ("s", "spins")):
        assert topics(part.process(run_id.encode(), start(run_id, name), 0, 10)) == ["history", "history", "tasks"]
        outputs = part.process(run_id.encode(), result(run_id, 0, 7), 1, 11)
        assert topics(outputs) == ["history", "history", "completions", "state"]
        done = finished(outputs)
        assert done.status == "failed" and done.error is not None
        assert done.error.type == {"q": "engine.PoisonCodeError", "s": "engine.ActivationBudgetExceededError"}[run_id]
        assert f"workflow {name!r} run {run_id}" in done.error.message
        assert part.finished[run_id] == "failed"
    part.process(b"ok", start("ok", "twice"), 2, 12)
    part.process(b"ok", result("ok", 0, "v"), 3, 13)
    assert finished(part.process(b"ok", result("ok", 1, "v"), 4, 14)).result == "v"


def test_systemexit_from_user_code_outside_the_workflow_loop_parks_the_input() -> None:
    part = logic()
    part.process(b"h", start("h", "waits"), 0, 10)
    before = list(part.histories["h"])
    payload = RECORDS.encode(ResumeHook(run_id="h", token="h:go", payload={"x": 1}, requested_at=1))
    outputs = part.process(b"h", payload, 1, 11)  # must not raise SystemExit
    assert topics(outputs) == ["dlq"]
    assert reason(outputs[0]) == "processing failed: builtins.SystemExit: schema says bye"
    assert part.histories["h"] == before  # reverted: the run waits on, as before
    part.process(b"ok", start("ok", "twice"), 2, 12)
    assert "ok" in part.histories
