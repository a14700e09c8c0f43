"""Dead letters someone hears about, on the real broker: a dead-lettered start fails its waiting client, ``kflow dlq
list/show/redrive`` through the console command (a redrive after a fix, and again: nothing twice), and a record
produced to the wrong inbox partition."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from engine import Registry, UnknownWorkflowError
from engine.runtime import CallArgs, StartWorkflow
from schemas import Codec, PayloadError, RecordCodec
from streams import Settings, Topics
from streams.client import Client
from streams.kafka import partition_for, producer, read_partition
from streams.ops import read_dead_letters
from streams.processors import Orchestrator, StepWorker
from support import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECORDS = RecordCodec()


@asynccontextmanager
async def processors(settings: Settings, module: str) -> AsyncIterator[None]:
    """An orchestrator and a step worker running the workflows of ``module``, in this process."""
    registry = Registry.from_module(module)
    services = [Orchestrator(settings, registry), StepWorker(settings, registry)]
    for service in services:
        await service.start()
    try:
        yield
    finally:
        for service in reversed(services):
            await service.stop()


async def kflow(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``kflow ARGS`` as a separate process on ``settings``' broker and topics (the event loop keeps running)."""
    env = {**os.environ, "KFLOW_BOOTSTRAP": settings.bootstrap, "KFLOW_TOPIC_PREFIX": settings.topic_prefix}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", *args, cwd=ROOT, env=env, stdout=-1, stderr=-1
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def listed(settings: Settings, *args: str) -> list[dict[str, Any]]:
    code, out, err = await kflow(settings, "dlq", "list", "--json", *args)
    assert code == 0, err
    letters: list[dict[str, Any]] = json.loads(out)
    return letters


async def send_raw(settings: Settings, key: bytes, value: bytes, *, topic: str = "inbox", **options: Any) -> int:
    raw = producer(settings.bootstrap)
    await raw.start()
    try:
        sent = await raw.send_and_wait(Topics(settings.topic_prefix).name(topic), value, key=key, **options)
        return int(sent.offset)
    finally:
        await raw.stop()


def start_record(run_id: str, workflow: str, *args: object) -> bytes:
    now = int(time.time() * 1000)
    return RECORDS.encode(
        StartWorkflow(run_id=run_id, workflow_name=workflow, args=CallArgs(args, {}), requested_at=now)
    )


async def test_a_dead_lettered_start_fails_the_waiting_client_with_the_reason(fresh: Settings) -> None:
    async with processors(fresh, "e2e_workflows"), Client(settings=fresh) as client:
        run_id = await client.start("no_such_workflow", 1)
        with pytest.raises(UnknownWorkflowError, match=r"no_such_workflow.*dead-lettered from .*inbox\[\d\]@\d+"):
            await client.result(run_id, timeout=60)  # the dead letter's completion, not a timeout
        # a start whose arguments cannot be decoded (another client's bug): its run fails the same way
        bad = uuid.uuid4().hex
        fields = Codec().decode(start_record(bad, "sum_three", 1, 2, 3)).record
        await send_raw(
            fresh, bad.encode(), Codec().encode("StartWorkflow", {**fields, "args": {"codec": "json", "data": b"{"}})
        )
        with pytest.raises(PayloadError, match="undecodable record"):
            await client.result(bad, timeout=60)
        assert await client.get_run(bad) is None  # the run never started: no history


async def test_dlq_list_show_and_a_redrive_after_the_fix_that_applies_each_record_once(fresh: Settings) -> None:
    topics = Topics(fresh.topic_prefix)
    async with processors(fresh, "e2e_workflows"):  # before the fix: late_report is not deployed
        async with Client(settings=fresh) as client:
            run_id = await client.start("late_report", "q3")
            with pytest.raises(UnknownWorkflowError, match="late_report"):
                await client.result(run_id, timeout=60)
        await send_raw(fresh, b"some-run", b"\xc3\x01junk", topic="tasks")  # a worker's dead letter
        letters = await eventually(lambda: _both(fresh), what="the two dead letters")
    start = next(letter for letter in letters if letter["record_type"] == "StartWorkflow")
    assert (start["key"], start["topic"], start["redriven"]) == (run_id, topics.inbox, None)
    assert "late_report" in start["reason"] and start["address"] == f"{start['dlq_partition']}:{start['dlq_offset']}"

    code, out, err = await kflow(fresh, "dlq", "list")
    assert code == 0, err
    [line] = [line for line in out.splitlines() if run_id in line]
    assert line.startswith(start["address"] + " ") and "StartWorkflow" in line and "late_report" in line
    code, out, err = await kflow(fresh, "dlq", "show", start["address"])
    assert code == 0 and f"from        {topics.inbox}[" in out and '{"json": {"args": ["q3"], "kwargs": {}}}' in out, (
        err
    )
    code, out, _ = await kflow(fresh, "dlq", "show", start["address"], "--json")
    assert json.loads(out)["record"]["fields"]["workflow_name"] == "late_report"
    for address, status in (("9:0", 2), ("x", 2), (f"{start['dlq_partition']}:999999", 1)):
        code, _, err = await kflow(fresh, "dlq", "show", address)
        assert code == status and err.startswith("kflow: error: ") and err.count("\n") == 1, err

    code, out, err = await kflow(fresh, "dlq", "redrive", "--dry-run")
    assert code == 0 and f"would redrive  {start['address']}  StartWorkflow  {run_id}" in out, out + err
    assert f"read from {topics.tasks}: only {topics.inbox} records are redriven" in out
    assert all(letter["redriven"] is None for letter in await listed(fresh))  # a dry run sends nothing

    async with processors(fresh, "dlq_workflows"):  # the fix is deployed
        code, out, err = await kflow(fresh, "dlq", "redrive", "--filter", "type=StartWorkflow", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert [r["address"] for r in report["redriven"]] == [start["address"]] and report["skipped"] == []
        async with Client(settings=fresh) as client:  # a new client: its scan finds both completions
            assert await client.result(run_id, timeout=60) == "report for q3"
        code, out, err = await kflow(fresh, "dlq", "redrive")  # again, everything: nothing is redriven twice
        assert code == 0 and "redriven: 0, skipped: 2" in out, out + err
        assert f"skipped  {start['address']}  StartWorkflow  {run_id}: redriven already" in out

    partition = partition_for(run_id.encode(), fresh.partitions)
    redriven = [
        message
        async for message in read_partition(fresh.bootstrap, TopicPartition(topics.inbox, partition), None)
        if dict(message.headers or ()).get("kflow-redrive-of")
    ]
    assert [dict(m.headers)["kflow-redrive-of"].decode() for m in redriven] == [
        f"{topics.dlq}[{start['dlq_partition']}]@{start['dlq_offset']}"
    ]
    async with Client(settings=fresh, history="kafka") as client:
        names = [type(event).__name__ for event in await client.get_events(run_id)]
    assert names.count("WorkflowStarted") == 1 and names[-1] == "WorkflowCompleted"
    [after] = [letter for letter in await listed(fresh, "--filter", f"run={run_id}")]
    assert after["redriven"] is not None and after["redriven"]["to"].startswith(f"{topics.inbox}[{partition}]@")


async def _both(settings: Settings) -> list[dict[str, Any]]:
    letters = await listed(settings)
    return letters if len(letters) == 2 else []


def _wrong_partition(key: bytes, partitions: int) -> int:
    return (partition_for(key, partitions) + 1) % partitions


async def test_a_start_produced_to_the_wrong_partition_is_moved_and_its_run_completes(fresh: Settings) -> None:
    topics = Topics(fresh.topic_prefix)
    run_id = uuid.uuid4().hex
    key, home = run_id.encode(), partition_for(run_id.encode(), fresh.partitions)
    wrong = _wrong_partition(key, fresh.partitions)
    async with processors(fresh, "e2e_workflows"), Client(settings=fresh) as client:
        offset = await send_raw(fresh, key, start_record(run_id, "sum_three", 1, 2, 3), partition=wrong)
        assert await client.result(run_id, timeout=60) == 6
        # the loop guard: a record that says it was moved already is not moved again
        bounced = uuid.uuid4().hex
        bad_home = partition_for(bounced.encode(), fresh.partitions)
        value = start_record(bounced, "sum_three", 1, 1, 1)
        headers = [("kflow-rerouted-from", b"0@0")]
        await send_raw(fresh, bounced.encode(), value, partition=_wrong_partition(bounced.encode(), 2), headers=headers)

        async def dead() -> list[str]:
            return [d.reason for d in (await read_dead_letters(fresh)).letters if d.key == bounced.encode()]

        [reason] = await eventually(dead, what="the bounced record's dead letter")
    assert reason.startswith(f"wrong partition: key '{bounced}' belongs to partition {bad_home} (murmur2)")
    moved = [
        message
        async for message in read_partition(fresh.bootstrap, TopicPartition(topics.inbox, home), None)
        if message.key == key and dict(message.headers or ()).get("kflow-rerouted-from")
    ]
    assert [dict(m.headers)["kflow-rerouted-from"] for m in moved] == [f"{wrong}@{offset}".encode()]
