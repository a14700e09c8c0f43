"""Poison code on the real broker: a step raising SystemExit and workflow code that never yields fail their own
runs (the error on ``.completions``, raised by ``client.result``); the orchestrator and the worker keep running."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator

import pytest

from engine import ActivationBudgetExceededError, EventLimits, PoisonCodeError, Registry, step, workflow
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker

pytestmark = pytest.mark.integration


@step
async def add(a: int, b: int) -> int:
    return a + b


@step(max_retries=3, retry_delay="1s")
async def exits(code: int) -> None:
    sys.exit(code)


@workflow
async def poison_step(code: int) -> None:
    await exits(code)


@workflow(event_limits=EventLimits(activation_steps=10_000))
async def poison_spin() -> None:
    await add(1, 1)
    while True:  # never waits on kflow again
        await asyncio.sleep(0)


@workflow
async def healthy_sum(a: int, b: int) -> int:
    return await add(a, b)


REGISTRY = Registry([add, exits, poison_step, poison_spin, healthy_sum])


@dataclasses.dataclass
class App:
    client: Client
    orchestrator: Orchestrator
    worker: StepWorker


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[App]:
    """An orchestrator and a step worker in this test process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-poison")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    orchestrator = Orchestrator(own, REGISTRY)
    worker = StepWorker(own, REGISTRY, concurrency=4)
    for service in (orchestrator, worker):
        await service.start()
    client = Client(settings=own, registry=REGISTRY)
    async with client:
        yield App(client, orchestrator, worker)
    for service in (worker, orchestrator):
        await service.stop()


async def test_poison_runs_fail_and_the_processes_keep_flowing(app: App) -> None:
    client = app.client
    exit_run = await client.start(poison_step, 3)
    spin_run = await client.start(poison_spin)
    healthy = await client.start(healthy_sum, 1, 2)

    with pytest.raises(PoisonCodeError, match=r"step 'exits' \(workflow 'poison_step' .*raised SystemExit\(3\)"):
        await client.result(exit_run, timeout=30)
    with pytest.raises(ActivationBudgetExceededError, match=r"EventLimits\.activation_steps \(10000\)") as spun:
        await client.result(spin_run, timeout=30)
    assert f"workflow 'poison_spin' run {spin_run}" in str(spun.value)
    assert await client.result(healthy, timeout=30) == 3

    # Both processes are still up and flowing: a run started after the poison ones completes.
    later = await client.start(healthy_sum, 2, 3)
    assert await client.result(later, timeout=30) == 5
    for service in (app.orchestrator, app.worker):
        loops = list(service.loops())
        assert loops and not any(task.done() for task in loops), f"{type(service).__name__} stopped"
