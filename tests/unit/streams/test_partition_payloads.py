"""Values the payload codec cannot carry, on the orchestrator's partition: the run fails (or the workflow code
sees the error at its call) with a message naming the path and the type; nothing goes to the dead letters and
no run is left waiting. Typed values (json+types) travel through a run exactly."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import sys
import types
import uuid
from decimal import Decimal

import pytest
from partition_samples import topics

from engine import NonDeterminismError, Registry, continue_as_new, start_child_workflow, step, workflow
from engine.runtime import CallArgs, PayloadTypes, Run, RunFinished, StartWorkflow, StepResult
from schemas import Codec, PayloadError, RecordCodec
from streams.ops import replay_history
from streams.processors import PartitionLogic


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Receipt:
    order: str
    amount: Decimal
    at: datetime.datetime


@step
async def echo(value: object) -> object:
    return value


@workflow
async def returns_object() -> object:
    await echo(1)
    return {"items": [1, 2, object()]}


@workflow
async def calls_a_step_with_object() -> object:
    return await echo(object())


@workflow
async def catches_the_step_call_error() -> object:
    try:
        await echo(lambda: 1)
    except PayloadError as exc:
        return f"caught: {exc}"
    return "not raised"


@workflow
async def child(value: object) -> object:
    return value


@workflow
async def starts_a_child_with_object() -> object:
    return await start_child_workflow(child, object())


@workflow
async def starts_a_child_and_catches() -> object:
    try:
        return await start_child_workflow(child, 1)
    except Exception as exc:  # the child's result could not be read here: the call fails, the parent goes on
        return f"child failed: {exc}"


@workflow
async def continues_with_object() -> None:
    await echo(1)
    continue_as_new(object())


@workflow
async def typed(receipt: Receipt) -> object:
    back = await echo(receipt)
    return (Colour.BLUE, back, {(1, 2): frozenset({datetime.date(2024, 2, 29)})})


REGISTRY = Registry(
    [
        echo,
        returns_object,
        calls_a_step_with_object,
        catches_the_step_call_error,
        child,
        starts_a_child_with_object,
        starts_a_child_and_catches,
        continues_with_object,
        typed,
    ]
)
RECORDS = RecordCodec(types=REGISTRY.payload_types)


def logic() -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)


def start(run_id: str, name: str, *args: object) -> bytes:
    return RECORDS.encode(StartWorkflow(run_id=run_id, workflow_name=name, args=CallArgs(args, {}), requested_at=1))


def step_result(run_id: str, position: int, value: object) -> bytes:
    record = StepResult(
        run_id=run_id, position=position, attempt=1, ok=True, result=value, worker="w", started_at=1, finished_at=2
    )
    return RECORDS.encode(record)


def finished(outputs: list) -> RunFinished:  # type: ignore[type-arg]
    [completion] = [RECORDS.decode(o.value) for o in outputs if o.topic == "completions"]
    assert isinstance(completion, RunFinished)
    return completion


def test_a_workflow_result_that_cannot_be_encoded_fails_the_run_naming_path_and_type() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    part.process(run_id.encode(), start(run_id, "returns_object"), 0, 10)
    outputs = part.process(run_id.encode(), step_result(run_id, 0, 1), 1, 11)
    assert "dlq" not in topics(outputs)
    done = finished(outputs)
    assert done.status == "failed" and done.error is not None
    assert done.error.type == "schemas._errors.PayloadError" and not done.error.retryable
    assert '$.result["items"][2]: object' in done.error.message
    assert part.finished[run_id] == "failed"
    history = [type(Codec().decode(o.value).record).__name__ for o in outputs if o.topic == "history"]
    assert len(history) == 2  # StepCompleted, WorkflowFailed: the run ended, nothing waits


def test_step_arguments_that_cannot_be_encoded_raise_at_the_call() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    outputs = part.process(run_id.encode(), start(run_id, "calls_a_step_with_object"), 0, 10)
    assert "dlq" not in topics(outputs) and "tasks" not in topics(outputs)
    done = finished(outputs)
    assert done.status == "failed" and done.error is not None
    assert "$.args[0]: object" in done.error.message


def test_workflow_code_can_catch_the_error_of_a_step_call() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    done = finished(part.process(run_id.encode(), start(run_id, "catches_the_step_call_error"), 0, 10))
    assert done.status == "completed"
    assert isinstance(done.result, str) and done.result.startswith("caught: ")
    assert "$.args[0]: function" in done.result


def test_child_arguments_that_cannot_be_encoded_fail_the_parent() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    outputs = part.process(run_id.encode(), start(run_id, "starts_a_child_with_object"), 0, 10)
    assert "dlq" not in topics(outputs) and "inbox" not in topics(outputs)  # no child started
    done = finished(outputs)
    assert done.status == "failed" and done.error is not None
    assert "$.args[0]: object" in done.error.message


def test_continue_as_new_arguments_that_cannot_be_encoded_fail_the_run() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    part.process(run_id.encode(), start(run_id, "continues_with_object"), 0, 10)
    outputs = part.process(run_id.encode(), step_result(run_id, 0, 1), 1, 11)
    assert "dlq" not in topics(outputs) and "inbox" not in topics(outputs)  # no successor
    done = finished(outputs)
    assert done.status == "failed" and done.error is not None
    assert "$.args[0]: object" in done.error.message


def test_typed_values_travel_through_a_run_exactly() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    paris = datetime.timezone(datetime.timedelta(hours=2))
    receipt = Receipt("o-1", Decimal("9.50"), datetime.datetime(2024, 5, 1, 12, 30, 0, 5, tzinfo=paris))
    outputs = part.process(run_id.encode(), start(run_id, "typed", receipt), 0, 10)
    [task] = [RECORDS.decode(o.value) for o in outputs if o.topic == "tasks"]
    assert task.args.args == (receipt,)  # type: ignore[attr-defined]
    done = finished(part.process(run_id.encode(), step_result(run_id, 0, receipt), 1, 11))
    assert done.status == "completed"
    assert done.result == (Colour.BLUE, receipt, {(1, 2): frozenset({datetime.date(2024, 2, 29)})})
    colour, back, mapping = done.result  # type: ignore[misc]
    assert colour is Colour.BLUE and type(back) is Receipt and type(back.amount) is Decimal
    assert back.at.utcoffset() == datetime.timedelta(hours=2) and back.at.microsecond == 5
    assert type(mapping[(1, 2)]) is frozenset


def test_kflow_replay_checks_payloads_as_the_processor_did() -> None:
    run_id = uuid.uuid4().hex
    outputs = logic().process(run_id.encode(), start(run_id, "catches_the_step_call_error"), 0, 10)
    events = [RECORDS.decode(o.value) for o in outputs if o.topic == "history"]
    assert [type(e).__name__ for e in events] == ["WorkflowStarted", "WorkflowCompleted"]
    outcome = replay_history(REGISTRY, run_id, events)  # type: ignore[arg-type]
    assert outcome.deterministic, outcome.describe()
    with pytest.raises(NonDeterminismError):  # unchecked, the refused step call would be issued this time
        Run.replay(REGISTRY, events)  # type: ignore[arg-type]


# A class of a module only the worker loads: its allow-list has it, the orchestrator's does not.
WORKER_ONLY = types.ModuleType("kflow_test_worker_only")
sys.modules[WORKER_ONLY.__name__] = WORKER_ONLY
Unlisted = dataclasses.make_dataclass(
    "Unlisted", [("n", int)], frozen=True, namespace={"__module__": WORKER_ONLY.__name__}
)
WORKER_ONLY.Unlisted = Unlisted  # type: ignore[attr-defined]
WORKER_RECORDS = RecordCodec(types=PayloadTypes([*REGISTRY.payload_types.modules, WORKER_ONLY.__name__]))


def test_a_step_result_the_orchestrator_cannot_decode_fails_that_attempt_and_the_run_goes_on() -> None:
    part, run_id = logic(), uuid.uuid4().hex
    part.process(
        run_id.encode(), start(run_id, "typed", Receipt("o", Decimal(1), datetime.datetime(2024, 1, 1))), 0, 10
    )
    value = WORKER_RECORDS.encode(
        StepResult(
            run_id=run_id, position=0, attempt=1, ok=True, result=Unlisted(1), worker="w", started_at=1, finished_at=2
        )
    )
    outputs = part.process(run_id.encode(), value, 1, 11)
    [letter] = [Codec().decode(o.value).record for o in outputs if o.topic == "dlq"]  # kept as evidence
    assert "Unlisted" in str(letter["reason"])
    done = finished(outputs)  # the step failed for good (not retryable): the workflow saw the error, not a hang
    assert done.status == "failed" and done.error is not None
    assert done.error.type == "schemas._errors.PayloadError" and "Unlisted" in done.error.message


def test_a_child_result_the_parent_cannot_decode_fails_the_child_call() -> None:
    part, parent = logic(), uuid.uuid4().hex
    outputs = part.process(parent.encode(), start(parent, "starts_a_child_and_catches"), 0, 10)
    [child_start] = [RECORDS.decode(o.value) for o in outputs if o.topic == "inbox"]
    assert isinstance(child_start, StartWorkflow)
    told = WORKER_RECORDS.encode(
        RunFinished(
            run_id=child_start.run_id,
            workflow_name="child",
            status="completed",
            result=Unlisted(2),
            parent_run_id=parent,
            parent_position=child_start.parent_position,
            started_at=1,
            finished_at=2,
        )
    )
    outputs = part.process(parent.encode(), told, 1, 11)
    assert "dlq" in topics(outputs)
    done = finished(outputs)
    assert done.status == "completed" and isinstance(done.result, str) and "Unlisted" in done.result
