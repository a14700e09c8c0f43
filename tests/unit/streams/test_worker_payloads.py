"""The step worker and payloads (no Kafka: one task through ``StepWorker._outputs``): a result the codec cannot
carry fails that attempt, not retried, with the path and the type; nothing goes to the dead letters. Typed
results (classes of the registry's modules) travel exactly."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from decimal import Decimal

from aiokafka import TopicPartition

from engine import Registry, step
from engine.runtime import CallArgs, ExecuteStep, StepResult
from streams import Settings, StepWorker


@dataclasses.dataclass(frozen=True)
class Quote:
    price: Decimal
    valid_until: datetime.datetime


@step
async def quote(kind: str) -> object:
    if kind == "object":
        return {"items": [1, 2, object()]}
    return Quote(Decimal("0.10"), datetime.datetime(2024, 5, 1, 9, tzinfo=datetime.UTC))


def _run(kind: str) -> StepResult:
    worker = StepWorker(Settings(bootstrap="127.0.0.1:1"), Registry([quote]))
    task = ExecuteStep(
        run_id="r",
        workflow_name="w",
        position=3,
        attempt=1,
        step_name="quote",
        args=CallArgs((kind,), {}),
        scheduled_at=1,
    )
    outputs = asyncio.run(worker._outputs(TopicPartition("t", 0), 0, b"r", worker.records.encode(task)))
    assert [o.topic for o in outputs] == ["inbox"]
    result = worker.records.decode(outputs[0].value or b"")
    assert isinstance(result, StepResult)
    return result


def test_a_result_that_cannot_be_encoded_fails_the_attempt_with_path_and_type() -> None:
    result = _run("object")
    assert not result.ok and result.error is not None and not result.error.retryable
    assert result.error.type == "schemas._errors.PayloadError"
    assert result.error.message.startswith("the result of step 'quote' cannot be sent: ")
    assert '$.result["items"][2]: object cannot be encoded' in result.error.message


def test_a_typed_result_travels_exactly() -> None:
    result = _run("quote")
    assert result.ok and result.result == Quote(Decimal("0.10"), datetime.datetime(2024, 5, 1, 9, tzinfo=datetime.UTC))
    assert type(result.result) is Quote
