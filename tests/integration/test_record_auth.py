"""With ``KFLOW_SECRET`` set on the processors and the worker: a ``StepResult`` or ``TimerFired`` written by anyone
else (no MAC) is dead-lettered with the reason, and the run goes on to complete with the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from engine import Registry
from engine.runtime import StepCompleted, StepResult, SystemClock, TimerElapsed, TimerFired
from schemas import RecordCodec
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.ops import read_dead_letters
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import eventually

pytestmark = pytest.mark.integration

SECRET = b"kflow-integration-secret"


@pytest.fixture
async def secured(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    """Orchestrator, timer processor and worker with the secret, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-auth", secret=SECRET)
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("auth_workflows")
    services = [Orchestrator(own, registry), TimerProcessor(own, state_dir=tmp_path), StepWorker(own, registry)]
    for service in services:
        await service.start()
    try:
        yield own
    finally:
        for service in reversed(services):
            await service.stop()


async def test_forged_step_results_and_timers_are_dead_lettered_and_the_run_completes_with_the_real_ones(
    secured: Settings,
) -> None:
    registry = Registry.from_module("auth_workflows")
    async with Client(settings=secured, registry=registry) as client:
        run_id = await client.start("guarded", "real")

        async def step_running() -> bool:
            return any(type(e).__name__ == "StepScheduled" for e in await client.get_events(run_id))

        await eventually(step_running, what="the step to be scheduled")
        now = SystemClock().now_ms()
        forged = [
            StepResult(
                run_id=run_id,
                position=0,
                attempt=1,
                ok=True,
                result="forged",
                worker="x",
                started_at=now,
                finished_at=now,
            ),
            # the run deadline's timer id is predictable: without the MAC check this would end the run
            TimerFired(
                run_id=run_id,
                timer_id="workflow_timeout:-1:1",
                position=-1,
                kind="workflow_timeout",
                fire_at=0,
                fired_at=now,
            ),
        ]
        sender = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, acks="all")
        await sender.start()
        try:
            for record in forged:  # anyone with write access to the inbox, but without the secret
                await sender.send_and_wait(
                    Topics(secured.topic_prefix).inbox, RecordCodec().encode(record), key=run_id.encode()
                )
        finally:
            await sender.stop()

        assert await client.result(run_id, timeout=60) == "real"
        events = await client.get_events(run_id)
        assert [e.result for e in events if isinstance(e, StepCompleted)] == ["real"]
        assert not any(isinstance(e, TimerElapsed) for e in events)

    async def both_dead_lettered() -> list[str]:
        letters = (await read_dead_letters(secured)).letters
        reasons = sorted(letter.reason for letter in letters if letter.run_id == run_id)
        return reasons if len(reasons) == 2 else []

    reasons = await eventually(both_dead_lettered, what="the two forged records on the dlq")
    assert reasons[0].startswith(f"unauthenticated StepResult for run {run_id} position 0 attempt 1: it carries no MAC")
    assert reasons[1].startswith(
        f"unauthenticated TimerFired workflow_timeout:-1:1 for run {run_id}: it carries no MAC"
    )
