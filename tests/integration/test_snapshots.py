"""Run snapshots on the real broker: runs that only wait are snapshotted once however much history others write,
and a new orchestrator restores them from those snapshots and carries them to the end."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from engine import Registry
from schemas import Codec
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import read_partition
from streams.processors import Orchestrator, StepWorker
from support import eventually

pytestmark = pytest.mark.integration

WAITING = 5
SNAPSHOT_AFTER = 20  # history records: the short runs below write about 30 times as many


def _orchestrator(settings: Settings, registry: Registry) -> Orchestrator:
    return Orchestrator(settings, registry, checkpoint_interval=0, snapshot_after=SNAPSHOT_AFTER, snapshot_min_age_ms=0)


async def _snapshots(settings: Settings) -> Counter[str]:
    """RunSnapshot records on the state topic, by run id (the topic is not compacted yet: every one written)."""
    codec, found = Codec(), Counter[str]()
    async for message in read_partition(
        settings.bootstrap, TopicPartition(Topics(settings.topic_prefix).state, 0), None
    ):
        if message.value is not None and codec.decode(message.value).name == "RunSnapshot":
            found[message.key.decode()] += 1
    return found


async def test_waiting_runs_are_snapshotted_once_and_restored_from_their_snapshots(
    settings: Settings, tmp_path: Path
) -> None:
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-snap{uuid.uuid4().hex[:6]}", partitions=1)
    await create_topics(own.bootstrap, Topics(own.topic_prefix), 1)
    registry = Registry.from_module("e2e_workflows")
    orchestrator, worker = _orchestrator(own, registry), StepWorker(own, registry, concurrency=8)
    for service in (orchestrator, worker):
        await service.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            waiting = [await client.start("approval", f"order-{i}") for i in range(WAITING)]
            for run_id in waiting:
                await eventually(lambda r=run_id: _hook_created(client, r), what=f"run {run_id} waiting on its hook")
            for wave in range(6):  # history of other runs grows ~30 x SNAPSHOT_AFTER records meanwhile
                ids = await asyncio.gather(*(client.start("sum_three", wave, i, 0) for i in range(25)))
                assert await asyncio.gather(*(client.result(r, timeout=60) for r in ids)) == [
                    wave + i for i in range(25)
                ]
            snapshots = await _snapshots(own)
            assert {run_id: snapshots[run_id] for run_id in waiting} == dict.fromkeys(waiting, 1)

            await orchestrator.stop()  # a new host: it restores the waiting runs from their snapshots
            orchestrator = _orchestrator(own, registry)
            await orchestrator.start()
            await eventually(lambda: len(orchestrator.partitions) == 1, timeout=60, what="the partition adopted")
            assert orchestrator.partitions[0].snapshots_restored >= WAITING
            for i, run_id in enumerate(waiting):
                assert await client.resume_hook(f"{run_id}:approval", {"ok": i % 2 == 0}) == "delivered"
            results = await asyncio.gather(*(client.result(r, timeout=60) for r in waiting))
            assert results == [{"order_id": f"order-{i}", "approved": i % 2 == 0} for i in range(WAITING)]
    finally:
        for service in (worker, orchestrator):
            await service.stop()


async def _hook_created(client: Client, run_id: str) -> bool:
    return any(type(e).__name__ == "HookCreated" for e in await client.get_events(run_id))
