"""Schedules on the real broker: fires with derived run ids, pause/resume, update, trigger, backfill, delete,
each overlap policy, refusals with the reason, a processor killed with kill -9 while a schedule fires, and
schedules declared with @scheduled_workflow made to exist by activation (client, CLI, processor flag)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

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
from schemas import RecordCodec
from streams import Client, Settings, Topics, create_topics
from streams.client import Schedules, read_to_end
from streams.kafka import producer
from streams.processors import Orchestrator, StepWorker, TimerProcessor

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
EVERY_SECOND = ScheduleSpec(interval="1s")


@pytest.fixture(scope="module")
async def client(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """A client of an in-process orchestrator, timer processor and step worker for ``schedule_workflows``."""
    own = dataclasses.replace(settings, topic_prefix=f"{settings.topic_prefix}-sched")
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


def new_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def now_ms() -> int:
    return int(time.time() * 1000)


async def state_until(
    client: Client,
    schedule_id: str,
    check: Callable[[ScheduleState], bool],
    what: str,
    timeout: float = 20,
    seen: list[ScheduleState] | None = None,
) -> ScheduleState:
    """Poll the schedule's state until ``check`` holds (every state read is appended to ``seen``)."""
    deadline = time.monotonic() + timeout
    while True:
        state = await client.schedules.get(schedule_id)
        assert state is not None, f"schedule {schedule_id} is gone"
        if seen is not None:
            seen.append(state)
        if check(state):
            return state
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state}"
        await asyncio.sleep(0.1)


async def spans(client: Client, run_ids: tuple[str, ...]) -> list[tuple[int, int | None, str]]:
    """(start, end or None while running, status) of each run, in start order."""
    found = []
    for run_id in run_ids:
        info = await client.get_run(run_id)
        assert info is not None, f"run {run_id} has no history"
        found.append((info.started_at, info.finished_at, info.status))
    return sorted(found, key=lambda span: span[0])


def never_concurrent(found: list[tuple[int, int | None, str]]) -> bool:
    return all(end is not None and end <= next_start for (_, end, _), (next_start, _, _) in zip(found, found[1:]))


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
        await asyncio.sleep(2.2)  # two fire times pass while paused
        still = await client.schedules.get(schedule_id)
        assert still is not None and still.fires == paused.fires and still.paused
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
    while now_ms() < deleted_at + 2500:
        await asyncio.sleep(0.1)
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

        ops = Schedules(client.settings, RecordCodec(), None, connected, SystemClock())
        bad_spec = dataclasses.replace(
            ops.command(new_id("bad"), "create", workflow_name="tick"), spec='{"cron": "61 * * * *"}'
        )
        with pytest.raises(ScheduleError, match=r"cron '61 \* \* \* \*': minute field '61': value 61 is out of range"):
            await ops.send(bad_spec, wait=True, timeout=30)
        bad_overlap = ops.command(schedule_id, "update", overlap="sometimes")
        with pytest.raises(ScheduleError, match="unknown overlap policy 'sometimes'"):
            await ops.send(bad_overlap, wait=True, timeout=30)
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


async def test_processor_activate_schedules_flag_and_cli_activate(settings: Settings, tmp_path: Path) -> None:
    own = dataclasses.replace(settings, topic_prefix=f"{settings.topic_prefix}-schedact{uuid.uuid4().hex[:6]}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(own.partitions),
        "KFLOW_BOOTSTRAP": own.bootstrap,
        "KFLOW_HOME": str(tmp_path / "home"),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *command, "-A", "schedule_workflows"],
            env=env,
            stdout=open(tmp_path / f"{command[0]}.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        for command in (["processor", "--no-materializer", "--activate-schedules"], ["worker"])
    ]
    try:
        async with Client(settings=own) as kflow:
            deadline = time.monotonic() + 60
            while (await kflow.schedules.get("declared-tick")) is None:  # created by the processor
                assert time.monotonic() < deadline, (tmp_path / "processor.log").read_text()
                await asyncio.sleep(0.2)
            fired = await state_until(kflow, "declared-tick", lambda s: s.fires >= 1, "a fire", timeout=60)
            assert await kflow.result(fired.recent_runs[0], timeout=30) == "declared v1"
            cli = subprocess.run(
                [sys.executable, "-m", "streams.cli", "schedules", "activate", "-A", "schedule_workflows"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert cli.returncode == 0, cli.stderr
            assert cli.stdout.startswith("schedule declared-tick unchanged: next fire "), cli.stdout
            assert cli.stdout.count("\n") == 1
            await kflow.schedules.delete("declared-tick")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert [proc.returncode for proc in procs] == [0, 0]  # SIGTERM: a clean stop
    assert (
        "declared schedule 'declared-tick' of workflow 'declared_tick' created"
        in (tmp_path / "processor.log").read_text()
    )


# --- kill -9 --------------------------------------------------------------------------------------------


async def test_a_processor_killed_with_kill_9_starts_every_nominal_fire_exactly_once_catching_up_late(
    settings: Settings, tmp_path: Path
) -> None:
    own = dataclasses.replace(settings, topic_prefix=f"{settings.topic_prefix}-schedcrash{uuid.uuid4().hex[:6]}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(own.partitions),
        "KFLOW_BOOTSTRAP": own.bootstrap,
        "KFLOW_HOME": str(tmp_path / "home"),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*command: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{command[0]}-{len(procs)}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *command, "-A", "schedule_workflows"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    schedule_id = new_id("crash")
    try:
        processor = spawn("processor", "--no-materializer")
        spawn("worker")
        async with Client(settings=own) as kflow:
            created = await kflow.schedules.create(
                schedule_id, "tick", EVERY_SECOND, schedule_id, overlap="allow_all", timeout=60
            )
            before = await state_until(kflow, schedule_id, lambda s: s.fires >= 3, "three fires")
            for run_id in before.recent_runs:  # no start of theirs is left in flight by the kill
                await kflow.result(run_id, timeout=30)
            os.kill(processor.pid, signal.SIGKILL)
            processor.wait()
            await asyncio.sleep(2.5)  # fire times pass with no processor running
            restarted_at = now_ms()
            spawn("processor", "--no-materializer")
            await state_until(
                kflow, schedule_id, lambda s: s.fires >= before.fires + 3, "fires after the restart", timeout=60
            )
            after = await kflow.schedules.pause(schedule_id)  # final: no fire follows this answer
            await kflow.result(after.recent_runs[-1], timeout=30)
            await kflow.schedules.delete(schedule_id)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    starts = await started_runs(own, schedule_key(schedule_id))
    assert created.next_fire_at is not None and before.last_fire_at is not None and after.last_fire_at is not None
    nominal_of = {fire_run_id(schedule_id, t): t for t in range(created.next_fire_at, after.last_fire_at + 1, 1000)}
    assert set(starts) <= set(nominal_of), f"runs that are no regular fire: {set(starts) - set(nominal_of)}"
    assert all(len(times) == 1 for times in starts.values()), f"a run started twice: {starts}"
    # Nothing lost: the fires due while nothing ran are within the catch-up window, so every nominal time from
    # the first to the last fire started exactly one run (run ids are derived from it) ...
    assert set(starts) == set(nominal_of) and len(starts) == after.fires and after.skipped == 0, (starts, after)
    # ... those due during the outage late, after the restart
    late = [
        run_id
        for run_id, (started_at,) in starts.items()
        if before.last_fire_at < nominal_of[run_id] < restarted_at <= started_at
    ]
    assert len(late) >= 2, (late, after)
    assert after.last_fire_at > restarted_at


async def started_runs(settings: Settings, parent: str) -> dict[str, list[int]]:
    """The timestamps of the ``WorkflowStarted`` events of each run started by ``parent`` (history topic)."""
    records = RecordCodec()
    starts: dict[str, list[int]] = collections.defaultdict(list)

    def visit(tp: TopicPartition, key: bytes | None, value: bytes | None) -> None:
        event = records.decode(value or b"")
        if isinstance(event, WorkflowStarted) and event.parent_run_id == parent:
            starts[event.run_id].append(event.timestamp)

    history = Topics(settings.topic_prefix).history
    await read_to_end(settings.bootstrap, [TopicPartition(history, p) for p in range(settings.partitions)], visit)
    return dict(starts)
