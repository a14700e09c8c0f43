"""Local steps on the real Kafka: kill -9 of the processor in the middle of a batch of local steps re-runs only
that batch's steps (its transaction never committed); the steps of the committed batch never run again."""

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

from engine import Registry
from streams import Settings, Topics, create_topics
from streams.client import Client

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


async def test_kill_9_mid_batch_reruns_only_the_uncommitted_local_steps(settings: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-local{tag}", keyspace=f"{settings.keyspace}_l{tag}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    effects = tmp_path / "effects.txt"
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(own.partitions),
        "KFLOW_KEYSPACE": own.keyspace,
        "KFLOW_HOME": str(tmp_path / "home"),
        "KFLOW_TEST_SIDE_EFFECTS": str(effects),
        "KFLOW_TEST_KILL_AT": "7",
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    command = [sys.executable, "-m", "streams.cli", "processor", "-A", "local_workflows", "--no-materializer"]
    command += ["--local-interval-ms", "60000"]  # each batch's steps in its one transaction however slow the machine
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(tmp_path / "first.log", "ab") as log:
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        async with Client(settings=own, registry=Registry.from_module("local_workflows")) as client:
            run_id = await client.start("local_chain", 10, 5)
            first = procs[0]
            for _ in range(600):  # the first processor kills itself in step 7 (no worker runs: all local)
                if first.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert first.returncode == -signal.SIGKILL, "the first processor should have killed itself in step 7"
            with open(tmp_path / "second.log", "ab") as log:
                procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            assert await client.result(run_id, timeout=120) == sum(range(10))
            events = await client.get_events(run_id)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)

    completed = [e.position for e in events if type(e).__name__ == "StepCompleted"]
    assert sorted(completed) == [p for p in range(11) if p != 5]  # position 5 is the sleep: once each
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    runs: dict[int, list[str]] = collections.defaultdict(list)
    for line in effects.read_text().splitlines():
        pid, ran_for, i = line.split()
        assert ran_for == run_id
        runs[int(i)].append(pid)
    killed = (tmp_path / "effects.killed").read_text()
    second = str(procs[1].pid)
    # the committed batch (steps 0-4, before the sleep) ran once, in the first processor, and never again
    assert {i: runs[i] for i in range(5)} == {i: [killed] for i in range(5)}
    # the batch in flight at the kill (steps 5-7 after the timer) ran again in the second; the rest there only
    assert {i: runs[i] for i in range(5, 8)} == {i: [killed, second] for i in range(5, 8)}
    assert {i: runs[i] for i in range(8, 10)} == {i: [second] for i in range(8, 10)}
