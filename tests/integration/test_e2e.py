"""Durable execution end to end on the real broker: orchestrator + timer processor + worker + client."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import e2e_workflows
from engine import FatalError, Registry, WorkflowTimeoutError
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import eventually

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class App:
    settings: Settings
    client: Client
    orchestrator: Orchestrator


@pytest.fixture(scope="module")
async def app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    """All kflow processes in this test process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-e2e")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("e2e_workflows")
    orchestrator = Orchestrator(own, registry)
    delay = TimerProcessor(own, state_dir=tmp_path_factory.mktemp("delay"))
    worker = StepWorker(own, registry, concurrency=16)
    for service in (orchestrator, delay, worker):
        await service.start()
    client = Client(settings=own, registry=registry)
    async with client:
        yield App(own, client, orchestrator)
    for service in (worker, delay, orchestrator):
        await service.stop()


async def test_steps_compose_into_a_result(app: App) -> None:
    run_id = await app.client.start("sum_three", 1, 2, 3)
    assert await app.client.result(run_id, timeout=30) == 6


async def test_start_by_function_and_keyword_arguments(app: App) -> None:
    run_id = await app.client.start(e2e_workflows.sum_three, 1, b=10, c=100)
    assert await app.client.result(run_id, timeout=30) == 111


async def test_retries_that_succeed(app: App) -> None:
    key = uuid.uuid4().hex
    run_id = await app.client.start("retried", key, 2)
    assert await app.client.result(run_id, timeout=30) == f"{key} ok after 3"


async def test_exhausted_retries_surface_as_the_steps_exception(app: App) -> None:
    run_id = await app.client.start("exhausted", "k")
    assert await app.client.result(run_id, timeout=30) == "caught: k is broken"


async def test_fatal_error_fails_the_run_without_retry(app: App) -> None:
    run_id = await app.client.start("fatal_run", "k")
    with pytest.raises(FatalError, match="no point retrying"):
        await app.client.result(run_id, timeout=30)
    events = await app.client.get_events(run_id)
    assert [type(e).__name__ for e in events].count("StepScheduled") == 1


async def test_step_timeout_is_enforced(app: App) -> None:
    run_id = await app.client.start("timeout_run")
    assert await app.client.result(run_id, timeout=30) == "StepTimeoutError"


@pytest.mark.parametrize("duration", ["300ms", 0.3, "1s"])
async def test_sleep_formats(app: App, duration: object) -> None:
    started = time.monotonic()
    run_id = await app.client.start("sleepy", duration)
    assert await app.client.result(run_id, timeout=30) == "awake"
    minimum = 1.0 if duration == "1s" else 0.3
    assert time.monotonic() - started >= minimum


async def test_sleep_for_a_timedelta(app: App) -> None:
    started = time.monotonic()
    run_id = await app.client.start("sleep_timedelta", 300)
    assert await app.client.result(run_id, timeout=30) == "awake"
    assert time.monotonic() - started >= 0.3


async def test_sleep_until_a_datetime(app: App) -> None:
    run_id = await app.client.start("sleep_until_soon")
    assert await app.client.result(run_id, timeout=30) == "awake"


async def test_max_duration_fails_an_overdue_run(app: App) -> None:
    run_id = await app.client.start("overdue")
    with pytest.raises(WorkflowTimeoutError):
        await app.client.result(run_id, timeout=30)


async def test_hundred_concurrent_runs(app: App) -> None:
    run_ids = await asyncio.gather(*(app.client.start("sum_three", i, i, i) for i in range(100)))
    results = await asyncio.gather(*(app.client.result(r, timeout=60) for r in run_ids))
    assert results == [3 * i for i in range(100)]


async def test_idempotency_key_yields_one_run(app: App) -> None:
    key = uuid.uuid4().hex
    first, second = await asyncio.gather(
        app.client.start("sum_three", 1, 1, 1, idempotency_key=key),
        app.client.start("sum_three", 1, 1, 1, idempotency_key=key),
    )
    assert first == second
    assert await app.client.result(first, timeout=30) == 3
    events = await app.client.get_events(first)
    assert [type(e).__name__ for e in events].count("WorkflowStarted") == 1


async def test_history_is_ordered_and_complete(app: App) -> None:
    run_id = await app.client.start("sum_three", 2, 3, 4)
    await app.client.result(run_id, timeout=30)
    events = await app.client.get_events(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [type(e).__name__ for e in events] == [
        "WorkflowStarted",
        "StepScheduled",
        "StepCompleted",
        "StepScheduled",
        "StepCompleted",
        "WorkflowCompleted",
    ]


async def test_always_replay_mode_gives_the_same_results(settings: Settings, tmp_path: Path) -> None:
    """cache_size=0 evicts every run after every input, so each input is a replay from history."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-replay")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("e2e_workflows")
    orchestrator = Orchestrator(own, registry, cache_size=0)
    services = [orchestrator, TimerProcessor(own, state_dir=tmp_path), StepWorker(own, registry)]
    for service in services:
        await service.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            run_id = await client.start("effects", "replay", 3, 0.05)
            assert await client.result(run_id, timeout=30) == 0 + 1 + 2
        # every input after the start (3 step results, 3 fired sleeps) was handled by a replayed run
        assert sum(p.replays for p in orchestrator.partitions.values()) >= 6
    finally:
        for service in reversed(services):
            await service.stop()


async def _dead_letters(settings: Settings, key: bytes) -> list[dict[str, object]]:
    """The dead letters keyed ``key``, polling the DLQ topic until one shows up (30 s at most)."""
    from aiokafka import TopicPartition

    from schemas import Codec
    from streams.kafka import consumer

    codec = Codec()
    reader = consumer(settings.bootstrap)
    await reader.start()
    found: list[dict[str, object]] = []
    try:
        tps = [TopicPartition(Topics(settings.topic_prefix).dlq, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)

        async def some_found() -> list[dict[str, object]]:
            for messages in (await reader.getmany(timeout_ms=500)).values():
                found.extend(r for r in (codec.decode(m.value).record for m in messages) if r["key"] == key)
            return found

        await eventually(some_found, interval=0, what=f"a dead letter keyed {key!r}")
    finally:
        await reader.stop()
    return found


async def test_malformed_inbox_record_goes_to_dlq_and_the_partition_keeps_flowing(app: App) -> None:
    from streams.kafka import producer

    # Same key as the real run: the garbage sits in front of it on the same partition.
    run_id = uuid.uuid4().hex
    raw = producer(app.settings.bootstrap)
    await raw.start()
    try:
        await raw.send_and_wait(Topics(app.settings.topic_prefix).inbox, b"\xc3\x01garbage", key=run_id.encode())
    finally:
        await raw.stop()
    started = await app.client.start("sum_three", 1, 2, 3)
    assert await app.client.result(started, timeout=30) == 6
    dead = await _dead_letters(app.settings, run_id.encode())
    assert len(dead) == 1 and "undecodable record" in str(dead[0]["reason"])
    assert dead[0]["value"] == b"\xc3\x01garbage" and dead[0]["topic"] == Topics(app.settings.topic_prefix).inbox


async def test_unknown_workflow_goes_to_dlq_and_fails_the_waiting_client(app: App) -> None:
    from engine import UnknownWorkflowError
    from engine.runtime import CallArgs, StartWorkflow
    from schemas import RecordCodec
    from streams.kafka import producer

    run_id = uuid.uuid4().hex
    raw = producer(app.settings.bootstrap)
    await raw.start()
    try:
        start = StartWorkflow(
            run_id=run_id, workflow_name="no_such_workflow", args=CallArgs((), {}), requested_at=int(time.time() * 1000)
        )
        await raw.send_and_wait(
            Topics(app.settings.topic_prefix).inbox, RecordCodec().encode(start), key=run_id.encode()
        )
    finally:
        await raw.stop()
    with pytest.raises(UnknownWorkflowError, match="no_such_workflow"):
        await app.client.result(run_id, timeout=30)
    dead = await _dead_letters(app.settings, run_id.encode())
    assert len(dead) == 1 and "no_such_workflow" in str(dead[0]["reason"])
    assert await app.client.result(await app.client.start("sum_three", 0, 0, 1), timeout=30) == 1


async def test_cancel_raises_at_the_next_await_and_cleanup_runs(app: App) -> None:
    from engine import CancellationError

    run_id = await app.client.start("cancellable", "c1")

    async def sleeping() -> bool:
        return any(type(e).__name__ == "TimerScheduled" for e in await app.client.get_events(run_id))

    await eventually(sleeping, what="the run to start sleeping")
    await app.client.cancel(run_id, reason="customer asked")
    with pytest.raises(CancellationError):
        await app.client.result(run_id, timeout=30)
    names = [type(e).__name__ for e in await app.client.get_events(run_id)]
    assert names.index("CancelRequested") < names.index("StepScheduled") < names.index("WorkflowCancelled")


async def test_a_result_over_the_record_limit_fails_the_run_naming_it_and_the_partition_keeps_flowing(app: App) -> None:
    from schemas import PayloadError

    run_id = await app.client.start("huge_result", 2_000_000)
    with pytest.raises(PayloadError, match=r"the workflow's result is too large: 2,000,\d+ bytes encoded, over the "):
        await app.client.result(run_id, timeout=30)
    assert await app.client.result(await app.client.start("sum_three", 1, 1, 1), timeout=30) == 3


async def test_child_workflows_run_on_their_own_partitions_and_report_back(app: App) -> None:
    run_id = await app.client.start("parent_sum", 5)
    assert await app.client.result(run_id, timeout=30) == 15 + 3
    started = [e for e in await app.client.get_events(run_id) if type(e).__name__ == "ChildWorkflowStarted"]
    assert len(started) == 2
    for event in started:
        child = await app.client.get_run(event.child_run_id)  # type: ignore[attr-defined]
        assert child is not None and child.status == "completed"


async def test_a_failed_child_surfaces_as_child_workflow_failed_error(app: App) -> None:
    run_id = await app.client.start("parent_of_failing")
    assert await app.client.result(run_id, timeout=30) == "child failed"


async def test_cancelling_a_parent_cancels_its_child(app: App) -> None:
    from engine import CancellationError

    run_id = await app.client.start("parent_of_sleeper", "pc")

    async def child_sleeping() -> str | None:
        started = [e for e in await app.client.get_events(run_id) if type(e).__name__ == "ChildWorkflowStarted"]
        if not started:
            return None
        child_id: str = started[0].child_run_id  # type: ignore[attr-defined]
        events = await app.client.get_events(child_id)
        return child_id if any(type(e).__name__ == "TimerScheduled" for e in events) else None

    child_id = await eventually(child_sleeping, what="the child to start sleeping")
    await app.client.cancel(run_id, reason="stop everything")
    with pytest.raises(CancellationError):
        await app.client.result(run_id, timeout=30)
    with pytest.raises(CancellationError):
        await app.client.result(child_id, timeout=30)


async def _wait_for_event(app: App, run_id: str, name: str) -> None:
    async def recorded() -> bool:
        return any(type(e).__name__ == name for e in await app.client.get_events(run_id))

    await eventually(recorded, what=f"a {name} in the history of {run_id}")


async def test_a_hook_payload_resumes_the_workflow(app: App) -> None:
    run_id = await app.client.start("approval", "o-7")
    await _wait_for_event(app, run_id, "HookCreated")
    await app.client.resume_hook(f"{run_id}:approval", {"ok": True})
    assert await app.client.result(run_id, timeout=30) == {"order_id": "o-7", "approved": True}


async def test_a_hook_payload_through_the_cli(app: App) -> None:
    import os
    import subprocess
    import sys

    run_id = await app.client.start("approval", "o-8")
    await _wait_for_event(app, run_id, "HookCreated")
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": app.settings.topic_prefix,
        "KFLOW_BOOTSTRAP": app.settings.bootstrap,
        "KFLOW_PARTITIONS": str(app.settings.partitions),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streams.cli", "hooks", "resume", f"{run_id}:approval", '{"ok": false}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert await app.client.result(run_id, timeout=30) == {"order_id": "o-8", "approved": False}


async def test_a_hook_that_times_out_raises_hook_expired(app: App) -> None:
    run_id = await app.client.start("approval_expires")
    assert await app.client.result(run_id, timeout=30) == "expired"


async def test_step_context_set_in_the_workflow_reaches_later_steps_on_the_worker(app: App) -> None:
    run_id = await app.client.start("with_context", "acme")
    assert await app.client.result(run_id, timeout=30) == ["nobody", "acme"]


async def test_continue_as_new_chains_runs_and_result_follows_the_chain(app: App) -> None:
    first = await app.client.start("countdown", 3)
    assert await app.client.result(first, timeout=30) == "liftoff"
    run = await app.client.get_run(first)
    assert run is not None and run.status == "continued_as_new" and run.next_run_id
    successor = await app.client.get_events(run.next_run_id)
    assert successor[0].continued_from == first  # linked both ways


async def test_the_hard_event_limit_fails_a_run_with_a_clear_error(app: App) -> None:
    from engine import EventLimitExceededError

    assert await app.client.result(await app.client.start("too_long", 3), timeout=30) == 3
    run_id = await app.client.start("too_long", 20)
    with pytest.raises(EventLimitExceededError, match="continue_as_new"):
        await app.client.result(run_id, timeout=30)
    assert len(await app.client.get_events(run_id)) <= 13


async def test_a_hook_payload_sent_before_the_hook_is_reached_is_kept(app: App) -> None:
    run_id = await app.client.start("late_hook", "o-9")
    await app.client.resume_hook(f"{run_id}:approval", {"ok": True})  # the run is still asleep
    assert await app.client.result(run_id, timeout=30) == {"order_id": "o-9", "approved": True}
    events = [type(e).__name__ for e in await app.client.get_events(run_id)]
    assert events.index("HookReceived") < events.index("HookCreated")  # buffered first, delivered later
