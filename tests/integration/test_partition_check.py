"""Every long-running process and the client refuse topics whose partition counts differ, with one clear line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from engine import Registry
from streams import PartitionCountError, Settings, Topics, create_topics
from streams.client import Client
from streams.processors import HistoryMaterializer, Orchestrator, StepWorker, TimerProcessor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def uneven(settings: Settings) -> AsyncIterator[Settings]:
    """Topics of their own, all with 2 partitions but ``.tasks``, grown to 3 (as someone might by hand)."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-u{uuid.uuid4().hex[:8]}")
    topics = Topics(own.topic_prefix)
    await create_topics(own.bootstrap, topics, 2)
    admin = AIOKafkaAdminClient(bootstrap_servers=own.bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topics.tasks: NewPartitions(total_count=3)})
        yield own
        await admin.delete_topics([name for name in await admin.list_topics() if name.startswith(own.topic_prefix)])
    finally:
        await admin.close()


def expected(settings: Settings, who: str) -> str:
    p = settings.topic_prefix
    return (
        f"refusing to start {who}: partition counts differ ({p}.inbox 2, {p}.history 2, {p}.tasks 3, "
        f"{p}.timers 2, {p}.state 2)"
    )


async def test_every_process_and_the_client_refuse_to_start(uneven: Settings, tmp_path: Path) -> None:
    registry = Registry.from_module("e2e_workflows")
    services = {
        "the orchestrator": Orchestrator(uneven, registry),
        "the step worker": StepWorker(uneven, registry),
        "the timer processor": TimerProcessor(uneven, state_dir=tmp_path),
        "the materializer": HistoryMaterializer(uneven),
    }
    for who, service in services.items():
        try:
            with pytest.raises(PartitionCountError) as refused:
                await service.start()
        finally:
            await service.stop()
        assert str(refused.value).startswith(expected(uneven, who)) and "\n" not in str(refused.value)
    client = Client(settings=uneven)
    try:
        with pytest.raises(PartitionCountError, match="refusing to start the client: partition counts differ"):
            await client.connect()
    finally:
        await client.close()


def kflow(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KFLOW_BOOTSTRAP": settings.bootstrap, "KFLOW_TOPIC_PREFIX": settings.topic_prefix}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


async def test_the_commands_exit_1_with_one_line(uneven: Settings) -> None:
    worker, run = await asyncio.gather(
        asyncio.to_thread(kflow, uneven, "worker", "-A", "examples.basic"),
        asyncio.to_thread(kflow, uneven, "run", "examples.basic:order", "o-1", "9.5"),
    )
    assert worker.returncode == 1 and "Traceback" not in worker.stderr, worker.stderr
    last = worker.stderr.splitlines()[-1]
    assert last.startswith(f"kflow: error: {expected(uneven, 'the step worker')}: ")
    assert last.endswith("(`kflow topics check` lists the differences)")
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"kflow: error: {expected(uneven, 'the client')}")
