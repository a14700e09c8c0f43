"""Schedules with the services as processes: ``kflow processor --activate-schedules`` and ``kflow schedules
activate``, and a processor killed with kill -9 while a schedule fires."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from engine import fire_run_id
from engine.runtime import WorkflowStarted, schedule_key
from schedule_support import EVERY_SECOND, new_id, now_ms, state_until
from schemas import RecordCodec
from streams import Client, Settings, Topics, create_topics
from streams.client import read_to_end
from support import eventually

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


async def test_processor_activate_schedules_flag_and_cli_activate(settings: Settings, tmp_path: Path) -> None:
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-schedact{uuid.uuid4().hex[:6]}")
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
    for command in (["processor", "--no-materializer", "--activate-schedules"], ["worker"]):
        with open(tmp_path / f"{command[0]}.log", "ab") as log:  # the child has its own copy of the file
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", *command, "-A", "schedule_workflows"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        async with Client(settings=own) as kflow:
            await eventually(  # created by the processor
                lambda: kflow.schedules.get("declared-tick"),
                timeout=60,
                interval=0.2,
                what=lambda: "the declared schedule; the processor's log:\n" + (tmp_path / "processor.log").read_text(),
            )
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
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-schedcrash{uuid.uuid4().hex[:6]}")
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
        with open(tmp_path / f"{command[0]}-{len(procs)}.log", "ab") as log:  # the child has its own copy
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
