"""pyworkflow parity on the real stack: get_context() fields (the chain attempt travels in StartWorkflow and
WorkflowStarted), get_step_info().idempotency_key stable across a retry, RetryableError(retry_after=datetime)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

import context_workflows
from engine import Registry
from engine.runtime import StepFailed, WorkflowStarted
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """Orchestrator, timer processor and worker in this test process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-context")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("context_workflows")
    services = [
        Orchestrator(own, registry),
        TimerProcessor(own, state_dir=tmp_path_factory.mktemp("timers")),
        StepWorker(own, registry, concurrency=4),
    ]
    for service in services:
        await service.start()
    async with Client(settings=own, registry=registry, history="kafka") as started:
        yield started
    for service in reversed(services):
        await service.stop()


async def test_context_step_info_and_a_retry_at_a_datetime(client: Client) -> None:
    tag = uuid.uuid4().hex
    first = await client.start("context_fields", tag, 1)
    result = await client.result(first, timeout=60)
    assert isinstance(result, dict)
    run_id = result["run_id"]
    assert run_id != first and result["continued_from"] == first  # the second run of the chain
    assert result["attempt"] == 2 and result["workflow_name"] == "context_fields"
    assert result["parent_run_id"] is None and result["is_replaying"] is False
    assert uuid.UUID(result["uuid"]).version == 4
    assert result["step"] == {"key": f"{run_id}:0", "attempt": 2, "position": 0, "step": "keyed"}
    assert result["child"] == {"parent_run_id": run_id, "depth": 1}

    events = await client.get_events(run_id)
    started = events[0]
    assert isinstance(started, WorkflowStarted) and started.chain_attempt == 2 and started.continued_from == first
    assert result["now_ms"] >= started.timestamp  # the activation's time: when the child's result was applied
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert len(failed) == 1 and failed[0].retry_at is not None
    asked = failed[0].error.retry_after_ms
    # The worker turned the datetime into the delay from the attempt's end (the policy would wait 1 s): the
    # attempt ended right after the step computed the datetime, so the delay is nearly all of RETRY_AFTER_S.
    assert asked is not None and 2_000 < asked <= context_workflows.RETRY_AFTER_S * 1000 + 1  # rounded up to a ms
    assert failed[0].retry_at - failed[0].timestamp == asked  # the retry timer waits exactly that long
    first_events = await client.get_events(first)
    assert isinstance(first_events[0], WorkflowStarted) and first_events[0].chain_attempt is None  # null = 1
