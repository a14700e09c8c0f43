"""Child workflows on the real broker: the parent close policy and ChildWorkflowHandle.cancel() / result(timeout).

Parent and child each live on the partition of their own run id; the request to cancel travels as a CancelWorkflow
on the inbox, and both histories record it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import CancellationError, Registry
from engine.runtime import (
    CancelRequested,
    ChildWorkflowCancelRequested,
    ChildWorkflowStarted,
    HistoryEvent,
    TimerElapsed,
    TimerScheduled,
)
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """Orchestrator, timer processor and worker in this test process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-close")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("close_policy_workflows")
    services = [
        Orchestrator(own, registry),
        TimerProcessor(own, state_dir=Path(tmp_path_factory.mktemp("timers"))),
        StepWorker(own, registry, concurrency=4),
    ]
    for service in services:
        await service.start()
    async with Client(settings=own, registry=registry) as started:
        yield started
    for service in reversed(services):
        await service.stop()


def names(events: list[HistoryEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


async def child_of(client: Client, run_id: str) -> str:
    [started] = [e for e in await client.get_events(run_id) if isinstance(e, ChildWorkflowStarted)]
    return started.child_run_id


async def assert_cancelled_with_cleanup(client: Client, child_id: str, reason: str) -> None:
    """The child ended cancelled, its history shows the request with ``reason``, and its cleanup step ran."""
    with pytest.raises(CancellationError):
        await client.result(child_id, timeout=60)
    events = await client.get_events(child_id)
    assert [e.reason for e in events if isinstance(e, CancelRequested)] == [reason]
    order = names(events)
    assert order.index("CancelRequested") < order.index("StepCompleted") < len(order) - 1
    assert order[-1] == "WorkflowCancelled"


async def test_a_parent_that_completes_cancels_its_running_child(client: Client) -> None:
    run_id = await client.start("leaving_parent", "lp")
    child_id = await client.result(run_id, timeout=60)
    assert isinstance(child_id, str) and child_id == await child_of(client, run_id)
    parent_events = await client.get_events(run_id)
    assert names(parent_events)[-2:] == ["ChildWorkflowCancelRequested", "WorkflowCompleted"]
    asked = parent_events[-2]
    assert isinstance(asked, ChildWorkflowCancelRequested)
    assert (asked.child_run_id, asked.command_position) == (child_id, None)
    assert asked.reason == f"parent run {run_id} completed"
    await assert_cancelled_with_cleanup(client, child_id, asked.reason)


async def test_a_result_timeout_fires_and_the_ending_parent_cancels_the_child(client: Client) -> None:
    run_id = await client.start("impatient_parent", "ip")
    assert await client.result(run_id, timeout=60) == "timed out while running"
    events = await client.get_events(run_id)
    timers = [(type(e).__name__, e.kind) for e in events if isinstance(e, (TimerScheduled, TimerElapsed))]
    assert timers == [("TimerScheduled", "child_timeout"), ("TimerElapsed", "child_timeout")]
    await assert_cancelled_with_cleanup(client, await child_of(client, run_id), f"parent run {run_id} completed")


async def test_handle_cancel_reaches_the_child_on_its_partition(client: Client) -> None:
    run_id = await client.start("cancelling_parent", "cp")
    assert await client.result(run_id, timeout=60) == [True, "engine.CancellationError", "cancelled", False]
    child_id = await child_of(client, run_id)
    [asked] = [e for e in await client.get_events(run_id) if isinstance(e, ChildWorkflowCancelRequested)]
    assert (asked.child_run_id, asked.position, asked.reason) == (child_id, 0, "the parent changed its mind")
    assert asked.command_position is not None and asked.command_position > 0
    await assert_cancelled_with_cleanup(client, child_id, "the parent changed its mind")
