"""The workflows and records of the PartitionLogic tests (test_partition_logic.py, test_partition_state.py)."""

from __future__ import annotations

from engine import Registry, hook, runtime, step, workflow
from engine.runtime import CallArgs, StartWorkflow, StepResult
from schemas import Codec, RecordCodec
from streams.processors import PartitionLogic


@step
async def echo(value: object) -> object:
    return value


@workflow
async def twice(value: object) -> object:
    first = await echo(value)
    return await echo(first)


@workflow
async def big(size: int) -> str:
    await echo(1)
    return "x" * size  # over the record limit: the run fails with a PayloadError naming it


@workflow
async def wide(size: int) -> object:
    await echo(1)
    return await hook("x" * size)  # its HookCreated event is over the record limit: the input is parked


RECORDS = RecordCodec()
REGISTRY = Registry([echo, twice, big, wide])


def logic(cache_size: int = 100) -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, cache_size)


def start(run_id: str, name: str = "twice", *args: object) -> bytes:
    return RECORDS.encode(
        StartWorkflow(run_id=run_id, workflow_name=name, args=CallArgs(args or ("v",), {}), requested_at=1)
    )


def result(run_id: str, position: int, value: object) -> bytes:
    return RECORDS.encode(
        StepResult(
            run_id=run_id, position=position, attempt=1, ok=True, result=value, worker="w", started_at=1, finished_at=2
        )
    )


def topics(outputs: list) -> list[str]:  # type: ignore[type-arg]
    return [o.topic for o in outputs]


def resume(run_id: str, token: str, payload: object = None) -> bytes:
    return RECORDS.encode(runtime.ResumeHook(run_id=run_id, token=token, payload=payload, requested_at=1))


def reason(output: object) -> str:
    return str(Codec().decode(output.value).record["reason"])  # type: ignore[attr-defined]


def finish(part: PartitionLogic, run_id: str, offset: int = 0) -> list:  # type: ignore[type-arg]
    outputs = part.process(run_id.encode(), start(run_id), offset, 10)
    outputs += part.process(run_id.encode(), result(run_id, 0, "v"), offset + 1, 11)
    return outputs + part.process(run_id.encode(), result(run_id, 1, "v"), offset + 2, 12)
