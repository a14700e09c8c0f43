"""Local steps settled before the transaction, over a real PartitionLogic (no Kafka): group commit, bounds,
failures recorded as attempts, retries and overruns handed to the step workers."""

from __future__ import annotations

import asyncio

import pytest

from engine import Registry, RetryableError, runtime, step, workflow
from engine.runtime import CallArgs, ExecuteStep, StartWorkflow, SystemClock
from schemas import RecordCodec
from streams.processors import LocalBounds, LocalSteps, Output, PartitionLogic, local_predicate

RECORDS = RecordCodec()
CALLS: list[tuple[str, int]] = []


@step(local=True)
async def add_one(value: int) -> int:
    CALLS.append(("add_one", value))
    return value + 1


@step
async def remote(value: int) -> int:
    return value


@step(local=True, max_retries=1, retry_delay="1s")
async def flaky(value: int) -> int:
    CALLS.append(("flaky", value))
    raise RetryableError("not yet")


@step(local=True, timeout=None)
async def slow(value: int) -> int:
    await asyncio.sleep(5)
    return value


@step(local=True, max_retries=0)
async def huge(size: int) -> str:
    return "x" * size


@workflow
async def too_big(size: int) -> str:
    return await huge(size)


@workflow
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await add_one(value)
    return value


@workflow
async def mixed(n: int) -> int:
    return await remote(await add_one(n))


@workflow
async def failing(n: int) -> int:
    return await flaky(n)


@workflow
async def slowly(n: int) -> int:
    return await slow(n)


REGISTRY = Registry([add_one, remote, flaky, slow, huge, chain, mixed, failing, slowly, too_big])


def local_steps(run_steps: bool = False, **bounds: int) -> LocalSteps:
    is_local = local_predicate(REGISTRY, run_steps)
    return LocalSteps(REGISTRY, RECORDS, SystemClock(), "local:test", is_local, bounds=LocalBounds(**bounds))


def start(part: PartitionLogic, run_id: str, name: str, arg: int) -> list[Output]:
    record = StartWorkflow(run_id=run_id, workflow_name=name, args=CallArgs((arg,), {}), requested_at=1)
    return part.process(run_id.encode(), RECORDS.encode(record), 0, 10)


def records(outputs: list[Output], topic: str) -> list[object]:
    return [RECORDS.decode(o.value or b"") for o in outputs if o.topic == topic]


def events(outputs: list[Output], run_id: str | None = None) -> list[str]:
    history = records(outputs, "history")
    return [type(e).__name__ for e in history if run_id is None or getattr(e, "run_id", None) == run_id]


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()


async def test_a_chain_of_local_steps_of_several_runs_commits_in_one_batch() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps()
    outputs = start(part, "a", "chain", 3) + start(part, "b", "chain", 2)
    settled = await local.settle(part.process, outputs)
    assert records(settled, "tasks") == []  # no .tasks hop
    done = {f.run_id: f.result for f in records(settled, "completions")}  # type: ignore[attr-defined]
    assert done == {"a": 3, "b": 2}
    for run_id, n in (("a", 3), ("b", 2)):
        history = [e for e in records(settled, "history") if e.run_id == run_id]  # type: ignore[attr-defined]
        assert [e.seq for e in history] == list(range(1, len(history) + 1))  # type: ignore[attr-defined]
        assert events(settled, run_id).count("StepCompleted") == n
    assert local.ran == 5 and local.handed_over == 0
    assert "a" in part.finished and "b" in part.finished  # the partition's state moved with the outputs


async def test_a_remote_step_still_goes_to_the_workers() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps()
    settled = await local.settle(part.process, start(part, "m", "mixed", 1))
    tasks = records(settled, "tasks")
    assert [(t.step_name, t.args.args) for t in tasks] == [("remote", (2,))]  # type: ignore[attr-defined]
    assert CALLS == [("add_one", 1)]


async def test_run_steps_makes_every_first_attempt_local() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps(run_steps=True)
    settled = await local.settle(part.process, start(part, "m", "mixed", 1))
    assert records(settled, "tasks") == []
    assert [f.result for f in records(settled, "completions")] == [2]  # type: ignore[attr-defined]


async def test_the_size_bound_hands_the_rest_to_the_workers() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps(max_steps=2)
    settled = await local.settle(part.process, start(part, "a", "chain", 5))
    assert events(settled).count("StepCompleted") == 2
    tasks = records(settled, "tasks")
    assert [(t.step_name, t.position, t.attempt) for t in tasks] == [("add_one", 2, 1)]  # type: ignore[attr-defined]
    assert local.handed_over == 1
    # the next batch (the worker's result) runs the rest locally again
    result = runtime.StepResult(
        run_id="a", position=2, attempt=1, ok=True, result=3, worker="w", started_at=1, finished_at=2
    )
    more = await local.settle(part.process, part.process(b"a", RECORDS.encode(result), 1, 20))
    assert events(more).count("StepCompleted") == 3 and records(more, "tasks") == []  # 1 recorded + 2 local
    assert [f.result for f in records(more, "completions")] == [5]  # type: ignore[attr-defined]


async def test_a_round_runs_only_what_fits_in_the_transaction() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps(max_steps=3)
    outputs = start(part, "a", "chain", 4) + start(part, "b", "chain", 4)
    settled = await local.settle(part.process, outputs)
    assert local.ran == 3 and len(CALLS) == 3  # round 1: a and b; round 2: room for one of them, none after
    assert len(records(settled, "tasks")) == 2 and local.handed_over == 2  # one step of each run
    assert events(settled).count("StepCompleted") == 3


async def test_no_round_starts_after_the_interval() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps(interval_ms=0)
    settled = await local.settle(part.process, start(part, "a", "chain", 3))
    assert local.ran == 0 and CALLS == [] and len(records(settled, "tasks")) == 1


async def test_a_failed_local_attempt_is_recorded_and_its_retry_goes_to_the_workers() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps()
    settled = await local.settle(part.process, start(part, "f", "failing", 7))
    assert CALLS == [("flaky", 7)]  # once: a failure is not handed over, it is an attempt
    assert events(settled) == ["WorkflowStarted", "StepScheduled", "StepFailed", "TimerScheduled"]
    assert records(settled, "tasks") == []
    timer = next(t for t in records(settled, "timers") if t.kind == "retry")  # type: ignore[attr-defined]
    due: int = timer.fire_at  # type: ignore[attr-defined]
    fired = runtime.TimerFired(
        run_id="f",
        timer_id=timer.timer_id,
        position=timer.position,
        kind="retry",
        fire_at=due,
        fired_at=due,  # type: ignore[attr-defined]
    )
    retry = await local.settle(part.process, part.process(b"f", RECORDS.encode(fired), 1, due))
    tasks = records(retry, "tasks")
    assert [(t.step_name, t.attempt) for t in tasks] == [("flaky", 2)]  # type: ignore[attr-defined]
    assert CALLS == [("flaky", 7)]


async def test_an_attempt_over_its_budget_is_handed_to_the_workers() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps(budget_ms=50)
    settled = await local.settle(part.process, start(part, "s", "slowly", 1))
    tasks = records(settled, "tasks")
    assert [(t.step_name, t.attempt) for t in tasks] == [("slow", 1)]  # type: ignore[attr-defined]
    assert isinstance(tasks[0], ExecuteStep) and local.handed_over == 1
    assert "StepCompleted" not in events(settled) and "StepFailed" not in events(settled)


def test_the_local_option_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="local must be a bool"):
        step(local="yes")  # type: ignore[call-overload]
    assert REGISTRY.step("add_one").local and not REGISTRY.step("remote").local


async def test_a_result_too_large_to_send_fails_the_attempt_as_on_a_worker() -> None:
    part, local = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0), local_steps()
    settled = await local.settle(part.process, start(part, "h", "too_big", 1_100_000))
    assert [o.topic for o in settled if o.topic == "dlq"] == []  # not parked: the run hears why
    failed = [e for e in records(settled, "history") if type(e).__name__ == "StepFailed"]
    assert len(failed) == 1 and "cannot be sent" in failed[0].error.message  # type: ignore[attr-defined]
    finished = records(settled, "completions")
    assert [f.status for f in finished] == ["failed"]  # type: ignore[attr-defined]
