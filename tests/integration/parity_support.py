"""What the pyworkflow-parity integration tests share: the services of ``parity_workflows`` in this process, the
``kflow`` command against them, and reading a run's inbox records."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine import Registry
from schemas import RecordCodec
from storage import StorageError
from streams import Client, Settings, Topics, create_topics, partition_for
from streams.processors import HistoryMaterializer, Orchestrator, StepWorker, TimerProcessor
from support import eventually

HERE = Path(__file__).resolve().parent
RECORDS = RecordCodec()


@dataclasses.dataclass
class Parity:
    settings: Settings
    client: Client


@asynccontextmanager
async def parity_services(settings: Settings, suffix: str, state_dir: Path, materialize: bool) -> AsyncIterator[Parity]:
    """Topics (and a keyspace) of their own, an orchestrator, a timer processor, a step worker and, with
    ``materialize``, a history materializer for ``parity_workflows``; a client of them."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-{suffix}", keyspace=f"{settings.keyspace}_{suffix}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("parity_workflows")
    services: list[Orchestrator | TimerProcessor | StepWorker | HistoryMaterializer] = [
        Orchestrator(own, registry),
        TimerProcessor(own, state_dir=state_dir),
        StepWorker(own, registry, concurrency=8),
    ]
    if materialize:
        services.append(HistoryMaterializer(own))
    for service in services:
        await service.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            yield Parity(own, client)
    finally:
        for service in reversed(services):
            await service.stop()


async def kflow(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The console command against ``settings``' servers, topics and keyspace, run from this folder (``-A``), in a
    thread: the services of this process keep running meanwhile."""
    return await asyncio.to_thread(_kflow, settings, *args, timeout=timeout)


def _kflow(settings: Settings, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KFLOW_BOOTSTRAP": settings.bootstrap,
        "KFLOW_CASSANDRA": settings.cassandra,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_KEYSPACE": settings.keyspace,
        "KFLOW_PARTITIONS": str(settings.partitions),
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env, cwd=HERE, timeout=timeout
    )


async def inbox_records(settings: Settings, run_id: str) -> list[str]:
    """The record types keyed by ``run_id`` on its inbox partition, up to the partition's current end."""
    tp = TopicPartition(Topics(settings.topic_prefix).inbox, partition_for(run_id.encode(), settings.partitions))
    reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        found: list[str] = []
        while await reader.position(tp) < end:
            for message in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                if message.key == run_id.encode():
                    found.append(RECORDS.codec.decode(message.value).name)
        return found
    finally:
        await reader.stop()


async def migrated(app: Parity) -> None:
    """Wait until the materializer migrated the keyspace (it does so in the background as it starts)."""

    async def listing() -> bool:
        try:
            await app.client.list_runs(limit=1)
        except StorageError:
            return False
        return True

    await eventually(listing, timeout=60, what=f"keyspace {app.settings.keyspace} migrated")


def new_tag() -> str:
    return uuid.uuid4().hex[:8]
