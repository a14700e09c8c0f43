"""Schedules on the real broker: fires with derived run ids, pause/resume, update, trigger, backfill, delete,
each overlap policy, refusals with the reason, and schedules declared with @scheduled_workflow made to exist
by activation. The services run in this process; test_schedules_processes.py has the tests with processes
(kill -9, the processor's activation flag).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from engine import (
    CancellationError,
    Registry,
    ScheduleError,
    ScheduleSpec,
    ScheduleSpecError,
    fire_run_id,
    scheduled_workflow,
)
from engine.runtime import CallArgs, ScheduleState, SystemClock, WorkflowCancelled, WorkflowStarted, schedule_key
from schedule_support import EVERY_SECOND, never_concurrent, new_id, now_ms, spans, state_until
from schemas import RecordCodec
from streams import Client, Settings, Topics, create_topics
from streams.client import ScheduleChannel
from streams.kafka import producer
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import holds_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """A client of an in-process orchestrator, timer processor and step worker for ``schedule_workflows``."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-sched")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("schedule_workflows")
    services = [
        Orchestrator(own, registry),
        TimerProcessor(own, state_dir=tmp_path_factory.mktemp("delay")),
        StepWorker(own, registry, concurrency=16),
    ]
    for service in services:
        await service.start()
    async with Client(settings=own, registry=registry) as found:
        yield found
    for service in reversed(services):
        await service.stop()


async def test_an_interval_schedule_fires_every_second_with_run_ids_derived_from_nominal_times(client: Client) -> None:
    schedule_id = new_id("every-second")
    created = await client.schedules.create(schedule_id, "tick", EVERY_SECOND, schedule_id, overlap="allow_all")
    try:
        first = created.next_fire_at
        assert first is not None and first % 1000 == 0 and created.created_at < first <= created.created_at + 1000
        assert (created.workflow_name, created.args, created.overlap) == (
            "tick",
            CallArgs((schedule_id,), {}),
            "allow_all",
        )
        state = await state_until(client, schedule_id, lambda s: s.fires >= 3, "three fires")
        expected = [fire_run_id(schedule_id, first + 1000 * k) for k in range(3)]
        assert list(state.recent_runs[:3]) == expected
        assert [await client.result(run_id, timeout=30) for run_id in expected] == [f"{schedule_id} v1"] * 3
        started = (await client.get_events(expected[0]))[0]
        assert isinstance(started, WorkflowStarted) and started.parent_run_id == schedule_key(schedule_id)
        assert started.timestamp >= first  # fired at its nominal time, not before
        listed = await client.schedules.list("tick")
        assert schedule_id in [s.schedule_id for s in listed]
        assert schedule_id not in [s.schedule_id for s in await client.schedules.list("lasting")]
    finally:
        await client.schedules.delete(schedule_id)


async def test_pause_stops_the_fires_and_resume_rearms_from_now(client: Client) -> None:
    schedule_id = new_id("pausing")
    await client.schedules.create(schedule_id, "tick", EVERY_SECOND, schedule_id, overlap="allow_all")
    try:
        await state_until(client, schedule_id, lambda s: s.fires >= 1, "a first fire")
        paused = await client.schedules.pause(schedule_id, note="maintenance")
        assert paused.paused and paused.next_fire_at is None and paused.note == "maintenance"

        async def still_paused() -> bool:
            still = await client.schedules.get(schedule_id)
            return still is not None and still.fires == paused.fires and still.paused

        await holds_for(still_paused, 2.2, what="the paused schedule not firing")  # two fire times pass
        resumed = await client.schedules.resume(schedule_id)
        assert not resumed.paused and resumed.next_fire_at is not None
        assert resumed.updated_at < resumed.next_fire_at <= resumed.updated_at + 1000  # from now, none made up
        await state_until(client, schedule_id, lambda s: s.fires > paused.fires, "a fire after resuming")
    finally:
        await client.schedules.delete(schedule_id)


async def test_update_changes_the_arguments_of_the_next_fires(client: Client) -> None:
    schedule_id = new_id("updating")
    await client.schedules.create(schedule_id, "tick", EVERY_SECOND, schedule_id, 1, overlap="allow_all")
    try:
        before = await state_until(client, schedule_id, lambda s: s.fires >= 1, "a first fire")
        assert await client.result(before.recent_runs[0], timeout=30) == f"{schedule_id} v1"
        updated = await client.schedules.update(
            schedule_id, args=(schedule_id,), kwargs={"version": 2}, overlap="skip", note="v2"
        )
        assert updated.args == CallArgs((schedule_id,), {"version": 2})
        assert (updated.overlap, updated.note, updated.workflow_name) == ("skip", "v2", "tick")
        after = await state_until(client, schedule_id, lambda s: s.fires > updated.fires, "a fire after the update")
        assert await client.result(after.recent_runs[-1], timeout=30) == f"{schedule_id} v2"
    finally:
        await client.schedules.delete(schedule_id)


async def test_trigger_starts_a_run_now(client: Client) -> None:
    schedule_id = new_id("trigger")
    await client.schedules.create(schedule_id, "tick", ScheduleSpec(interval="1d"), schedule_id)
    try:
        run_id = await client.schedules.trigger(schedule_id)
        assert await client.result(run_id, timeout=30) == f"{schedule_id} v1"
        state = await client.schedules.get(schedule_id)
        assert state is not None and run_id in state.recent_runs and state.fires == 1
        started = (await client.get_events(run_id))[0]
        assert isinstance(started, WorkflowStarted) and started.parent_run_id == schedule_key(schedule_id)
    finally:
        await client.schedules.delete(schedule_id)


async def test_backfill_of_a_past_range_starts_exactly_the_fires_in_it(client: Client) -> None:
    schedule_id = new_id("backfill")
    hour = 3_600_000
    top = now_ms() // hour * hour
    # hourly, ended at the last full hour: no regular fire can happen during the test
    created = await client.schedules.create(
        schedule_id, "tick", ScheduleSpec(interval="1h", end_at=top), schedule_id, overlap="allow_all"
    )
    try:
        assert created.next_fire_at is None
        run_ids = await client.schedules.backfill(
            schedule_id, top - 3 * hour, datetime.fromtimestamp(top / 1000, tz=UTC)
        )
        assert len(set(run_ids)) == 3  # top - 3h, top - 2h, top - 1h; top itself is outside [start, end)
        assert [await client.result(run_id, timeout=30) for run_id in run_ids] == [f"{schedule_id} v1"] * 3
        state = await client.schedules.get(schedule_id)
        assert state is not None and state.fires == 3 and sorted(state.recent_runs) == sorted(run_ids)
        assert state.last_fire_at == top - hour
    finally:
        await client.schedules.delete(schedule_id)


async def test_delete_stops_the_fires_and_leaves_the_running_run_alone(client: Client) -> None:
    schedule_id = new_id("delete")
    await client.schedules.create(schedule_id, "lasting", EVERY_SECOND, schedule_id, 1.5)
    state = await state_until(client, schedule_id, lambda s: bool(s.running), "a running run")
    await client.schedules.delete(schedule_id)
    deleted_at = now_ms()
    assert await client.schedules.get(schedule_id) is None
    assert schedule_id not in [s.schedule_id for s in await client.schedules.list()]
    assert await client.result(state.running[0], timeout=30) == f"{schedule_id} v1"

    async def still_deleted() -> bool:
        return await client.schedules.get(schedule_id) is None

    await holds_for(still_deleted, (deleted_at + 2500 - now_ms()) / 1000, what="the schedule staying deleted")
    later = [fire_run_id(schedule_id, t) for t in range(deleted_at // 1000 * 1000 + 1000, deleted_at + 2500, 1000)]
    assert [await client.get_run(run_id) for run_id in later] == [None] * len(later)


# --- overlap policies: a run lasts 2.5 s, the schedule fires every second ---------------------------------


async def test_skip_drops_the_fires_that_find_a_run_running(client: Client) -> None:
    schedule_id = new_id("skip")
    await client.schedules.create(schedule_id, "lasting", EVERY_SECOND, schedule_id, 2.5, overlap="skip")
    seen: list[ScheduleState] = []
    try:
        state = await state_until(
            client,
            schedule_id,
            lambda s: s.fires >= 2 and s.skipped >= 2,
            "a second run after skipped fires",
            seen=seen,
        )
    finally:
        await client.schedules.delete(schedule_id)
    assert max(len(s.running) for s in seen) == 1 and not any(s.buffered for s in seen)
    assert never_concurrent((await spans(client, state.recent_runs))[:2])


async def test_buffer_one_keeps_at_most_one_fire_for_after_the_running_run(client: Client) -> None:
    schedule_id = new_id("buffer-one")
    await client.schedules.create(schedule_id, "lasting", EVERY_SECOND, schedule_id, 2.5, overlap="buffer_one")
    seen: list[ScheduleState] = []
    try:
        state = await state_until(
            client, schedule_id, lambda s: s.fires >= 2 and s.skipped >= 1, "a buffered fire started", seen=seen
        )
    finally:
        await client.schedules.delete(schedule_id)
    assert max(len(s.buffered) for s in seen) == 1 and max(len(s.running) for s in seen) == 1
    assert never_concurrent((await spans(client, state.recent_runs))[:2])


async def test_buffer_all_keeps_every_fire_and_runs_them_one_after_another(client: Client) -> None:
    schedule_id = new_id("buffer-all")
    await client.schedules.create(schedule_id, "lasting", EVERY_SECOND, schedule_id, 2.5, overlap="buffer_all")
    seen: list[ScheduleState] = []
    try:
        state = await state_until(
            client,
            schedule_id,
            lambda s: s.fires >= 2 and len(s.buffered) >= 2,
            "two fires buffered while a buffered one runs",
            seen=seen,
        )
    finally:
        await client.schedules.delete(schedule_id)
    assert state.skipped == 0 and max(len(s.running) for s in seen) == 1
    assert max(len(s.buffered) for s in seen) >= 2
    assert never_concurrent((await spans(client, state.recent_runs))[:2])


async def test_cancel_other_cancels_the_running_run_and_starts_the_new_one(client: Client) -> None:
    schedule_id = new_id("cancel-other")
    await client.schedules.create(schedule_id, "lasting", EVERY_SECOND, schedule_id, 2.5, overlap="cancel_other")
    try:
        state = await state_until(client, schedule_id, lambda s: s.fires >= 2, "a second fire")
    finally:
        await client.schedules.delete(schedule_id)
    first = state.recent_runs[0]
    with pytest.raises(CancellationError):
        await client.result(first, timeout=30)
    ending = (await client.get_events(first))[-1]
    assert isinstance(ending, WorkflowCancelled) and "cancel_other" in (ending.reason or "")
    assert state.skipped == 0


async def test_allow_all_starts_every_fire_while_others_run(client: Client) -> None:
    schedule_id = new_id("allow-all")
    await client.schedules.create(schedule_id, "lasting", EVERY_SECOND, schedule_id, 2.5, overlap="allow_all")
    try:
        state = await state_until(client, schedule_id, lambda s: len(s.running) >= 2, "two runs at once")
    finally:
        await client.schedules.delete(schedule_id)
    assert state.skipped == 0 and not state.buffered
    first, second = (await spans(client, state.running))[:2]
    assert first[1] is None or first[1] > second[0]  # the second started before the first ended


# --- refusals ------------------------------------------------------------------------------------------


async def test_refused_commands_raise_schedule_error_with_the_reason(client: Client) -> None:
    schedule_id = new_id("errors")
    await client.schedules.create(schedule_id, "tick", ScheduleSpec(cron="0 0 1 1 *"), schedule_id)
    try:
        with pytest.raises(ScheduleError, match=f"schedule '{schedule_id}' exists already"):
            await client.schedules.create(schedule_id, "tick", EVERY_SECOND, schedule_id)
        with pytest.raises(ScheduleError, match="more than 1000 fires"):
            await client.schedules.backfill(schedule_id, 0, 1001 * 366 * 86_400_000)
        unknown = new_id("unknown")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.schedules.pause(unknown),
            lambda: client.schedules.resume(unknown),
            lambda: client.schedules.trigger(unknown),
            lambda: client.schedules.update(unknown, overlap="skip"),
            lambda: client.schedules.delete(unknown),
            lambda: client.schedules.backfill(unknown, 0, 1000),
        ]
        for call in calls:
            with pytest.raises(ScheduleError, match=f"no schedule '{unknown}'"):
                await call()
        # refused before anything is sent
        with pytest.raises(ScheduleError, match="unknown overlap policy 'sometimes'"):
            await client.schedules.create(new_id("x"), "tick", EVERY_SECOND, overlap="sometimes")
        with pytest.raises(ScheduleSpecError, match="timezone 'Mars/Olympus' is not a known IANA time zone"):
            ScheduleSpec(cron="0 9 * * *", timezone="Mars/Olympus")
        # what the orchestrator refuses when another client sends it
        sender = producer(client.settings.bootstrap)
        await sender.start()

        async def connected() -> AIOKafkaProducer:
            return sender

        try:
            ops = ScheduleChannel(client.settings, RecordCodec(), connected, SystemClock())
            bad_spec = dataclasses.replace(
                ops.command(new_id("bad"), "create", workflow_name="tick"), spec='{"cron": "61 * * * *"}'
            )
            refusal = r"cron '61 \* \* \* \*': minute field '61': value 61 is out of range"
            with pytest.raises(ScheduleError, match=refusal):
                await ops.send(bad_spec, wait=True, timeout=30)
            bad_overlap = ops.command(schedule_id, "update", overlap="sometimes")
            with pytest.raises(ScheduleError, match="unknown overlap policy 'sometimes'"):
                await ops.send(bad_overlap, wait=True, timeout=30)
        finally:
            await sender.stop()
    finally:
        await client.schedules.delete(schedule_id)


# --- schedules declared in code ------------------------------------------------------------------------------


@scheduled_workflow(
    interval="1s",
    schedule_id="declared-tick",
    name="declared_tick",
    args=("declared",),
    kwargs={"version": 2},
    overlap_policy="skip",
)
async def declared_tick_v2(tag: str, version: int = 1) -> str:
    """The next deploy's declaration of ``schedule_workflows.declared_tick``: other arguments and policy."""
    raise AssertionError("the processor runs the function of its own registry")


async def test_activation_creates_the_declared_schedule_then_leaves_it_alone_then_updates_it(client: Client) -> None:
    declared = Registry.from_module("schedule_workflows").schedules["declared-tick"]
    changed = Registry([declared_tick_v2]).schedules["declared-tick"]
    try:
        assert await client.schedules.activate("schedule_workflows") == ["declared-tick"]
        created = await client.schedules.get("declared-tick")
        assert created is not None and ScheduleSpec.from_wire(json.loads(created.spec)) == declared.spec
        assert (created.workflow_name, created.args, created.overlap) == (
            "declared_tick",
            CallArgs(("declared",), {}),
            "allow_all",
        )
        fired = await state_until(client, "declared-tick", lambda s: s.fires >= 2, "two fires")
        assert [await client.result(run_id, timeout=30) for run_id in fired.recent_runs[:2]] == ["declared v1"] * 2

        again = await client.schedules.activate_declared(declared, timeout=30)
        assert again.outcome == "unchanged"
        assert await client.schedules.activate(Registry.from_module("schedule_workflows")) == ["declared-tick"]
        same = await client.schedules.get("declared-tick")
        assert same is not None and (same.generation, same.requests) == (created.generation, created.requests)

        updated = await client.schedules.activate_declared(changed, timeout=30)
        assert updated.outcome == "updated" and updated.state.generation == created.generation + 1
        assert (updated.state.args, updated.state.overlap) == (CallArgs(("declared",), {"version": 2}), "skip")
        after = await state_until(
            client, "declared-tick", lambda s: s.fires > updated.state.fires, "a fire after the update"
        )
        assert await client.result(after.recent_runs[-1], timeout=30) == "declared v2"
        assert (await client.schedules.activate_declared(changed, timeout=30)).outcome == "unchanged"
    finally:
        await client.schedules.delete("declared-tick")
