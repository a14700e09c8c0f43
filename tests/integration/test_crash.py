"""kill -9 (not a graceful stop) of each kflow process: runs still finish exactly once.

Every test runs real ``kflow processor`` / ``kflow worker`` processes on a topic prefix of its own and
counts side effects in a file the steps append to (fsync'd), so "a completed step never ran again" is
checked against what actually executed.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import CancellationError, Registry
from engine.runtime import ChildWorkflowStarted
from schemas import RecordCodec
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import consumer
from support import eventually

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


@dataclasses.dataclass
class Cluster:
    settings: Settings
    env: dict[str, str]
    effects: Path
    procs: list[subprocess.Popen[bytes]]
    logs: Path

    def spawn(self, command: str, name: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:  # the child has its own copy of the file
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", command, "-A", "e2e_workflows"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def lines(self) -> list[str]:
        return self.effects.read_text().splitlines() if self.effects.exists() else []


@pytest.fixture
async def cluster(settings: Settings, tmp_path: Path) -> AsyncIterator[Cluster]:
    tag = uuid.uuid4().hex[:6]
    own = settings.replace(
        topic_prefix=f"{settings.topic_prefix}-crash{tag}", keyspace=f"{settings.keyspace}_crash{tag}"
    )
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    effects = tmp_path / "effects.txt"
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(own.partitions),
        "KFLOW_BOOTSTRAP": own.bootstrap,
        "KFLOW_HOME": str(tmp_path / "home"),
        "KFLOW_CASSANDRA": own.cassandra,
        "KFLOW_KEYSPACE": own.keyspace,
        "KFLOW_TEST_SIDE_EFFECTS": str(effects),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    found = Cluster(own, env, effects, [], tmp_path)
    yield found
    for proc in found.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


async def completions_per_run(settings: Settings) -> collections.Counter[str]:
    """How many RunFinished records each run id has on the completions topic (read to its end)."""
    records = RecordCodec()
    reader = consumer(settings.bootstrap)
    await reader.start()
    counts: collections.Counter[str] = collections.Counter()
    try:
        from aiokafka import TopicPartition

        tps = [TopicPartition(Topics(settings.topic_prefix).completions, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        for tp in tps:
            while await reader.position(tp) < ends[tp]:
                for message in (await reader.getmany(tp, timeout_ms=1000)).get(tp, []):
                    counts[records.decode(message.value).run_id] += 1  # type: ignore[attr-defined]
    finally:
        await reader.stop()
    return counts


def client(cluster: Cluster) -> Client:
    return Client(settings=cluster.settings, registry=Registry.from_module("e2e_workflows"))


async def test_worker_killed_mid_step_redelivers_the_command(cluster: Cluster) -> None:
    cluster.spawn("processor", "processor")
    worker = cluster.spawn("worker", "worker-1")
    async with client(cluster) as kflow:
        run_id = await kflow.start("slow", "crash-step", 4.0)
        await eventually(lambda: "start crash-step" in cluster.lines(), timeout=60, what="the step to start")
        kill9(worker)
        cluster.spawn("worker", "worker-2")
        assert await kflow.result(run_id, timeout=120) == "crash-step"
    lines = cluster.lines()
    assert lines.count("start crash-step") == 2  # at-least-once for the step in flight
    assert lines.count("end crash-step") == 1
    assert (await completions_per_run(cluster.settings))[run_id] == 1


async def test_orchestrator_killed_mid_run_loses_and_repeats_nothing(cluster: Cluster) -> None:
    processor = cluster.spawn("processor", "processor-1")
    cluster.spawn("worker", "worker")
    async with client(cluster) as kflow:
        run_ids = [await kflow.start("effects", f"run{i}", 6, 0.15) for i in range(8)]
        await eventually(lambda: len(cluster.lines()) >= 12, timeout=60, what="some steps to complete")
        kill9(processor)
        cluster.spawn("processor", "processor-2")
        results = [await kflow.result(run_id, timeout=120) for run_id in run_ids]
    assert results == [15] * 8
    counted = collections.Counter(cluster.lines())
    assert sorted(counted) == sorted(f"done run{i} {j}" for i in range(8) for j in range(6))
    assert set(counted.values()) == {1}, "a completed step ran again"
    per_run = await completions_per_run(cluster.settings)
    assert [per_run[r] for r in run_ids] == [1] * 8


async def test_delay_processor_killed_with_timers_pending(cluster: Cluster) -> None:
    processor = cluster.spawn("processor", "processor-1")
    cluster.spawn("worker", "worker")
    async with client(cluster) as kflow:
        run_ids = [await kflow.start("sleepy", "12s") for _ in range(5)]

        async def armed() -> bool:
            histories = [await kflow.get_events(run_id) for run_id in run_ids]
            return all(any(type(e).__name__ == "TimerScheduled" and e.kind == "sleep" for e in h) for h in histories)

        await eventually(armed, interval=0.1, what="the sleeps to be armed")
        kill9(processor)
        killed_at_ms = int(time.time() * 1000)
        cluster.spawn("processor", "processor-2")
        results = [await kflow.result(run_id, timeout=120) for run_id in run_ids]
        assert results == ["awake"] * 5
        for run_id in run_ids:
            elapsed = [e for e in await kflow.get_events(run_id) if type(e).__name__ == "TimerElapsed"]
            assert len(elapsed) == 1 and elapsed[0].timestamp > killed_at_ms  # type: ignore[attr-defined]
    per_run = await completions_per_run(cluster.settings)
    assert [per_run[r] for r in run_ids] == [1] * 5


async def test_orchestrator_killed_while_runs_wait_on_hooks_and_children(cluster: Cluster) -> None:
    processor = cluster.spawn("processor", "processor-1")
    cluster.spawn("worker", "worker")
    async with client(cluster) as kflow:
        waiting = [await kflow.start("approval", f"o-{i}") for i in range(4)]
        parents = [await kflow.start("parent_of_sleeper", f"p{i}") for i in range(2)]

        async def has(run_id: str, event: str) -> bool:
            return any(type(e).__name__ == event for e in await kflow.get_events(run_id))

        async def all_waiting() -> bool:
            return all(
                [await has(r, "HookCreated") for r in waiting] + [await has(p, "ChildWorkflowStarted") for p in parents]
            )

        await eventually(all_waiting, timeout=60, interval=0.1, what="the runs to reach their hooks and children")
        kill9(processor)
        cluster.spawn("processor", "processor-2")
        for i, run_id in enumerate(waiting):
            await kflow.resume_hook(f"{run_id}:approval", {"ok": i % 2 == 0}, timeout=120)
        for parent in parents:
            await kflow.cancel(parent, reason="after the crash")
        results = [await kflow.result(run_id, timeout=120) for run_id in waiting]
        assert [r["approved"] for r in results] == [True, False, True, False]  # type: ignore[index]
        for parent in parents:
            with pytest.raises(CancellationError):
                await kflow.result(parent, timeout=120)
        # A parent ends once its own cleanup ran; its child is cancelled alongside, not before: wait for it too.
        children = [
            e.child_run_id for p in parents for e in await kflow.get_events(p) if isinstance(e, ChildWorkflowStarted)
        ]
        assert len(children) == len(parents)
        for child in children:
            with pytest.raises(CancellationError):
                await kflow.result(child, timeout=120)
    cleanups = [line for line in cluster.lines() if line.startswith("cleanup")]
    assert sorted(cleanups) == sorted([f"cleanup p{i}" for i in range(2)] + [f"cleanup parent-p{i}" for i in range(2)])
