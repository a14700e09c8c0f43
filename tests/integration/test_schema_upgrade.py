"""A rolling upgrade of the wire contract mid-run, then a rollback, with real processes on real Kafka.

The "new release" is today's code with an optional field added to ``StepCompleted`` (history) and to
``ExecuteStep`` (tasks): a copy of the ``schemas`` package put first on the processes' ``PYTHONPATH``.

1. old orchestrator + old worker: every run does its first step and waits on a hook;
2. the orchestrator is replaced by the new release while the OLD worker keeps running: the new orchestrator
   restores runs written by the old one, and the old worker reads ``ExecuteStep`` records of a schema it never
   saw (it learns it from the ``.schemas`` topic the new process published it to);
3. rollback: the old orchestrator comes back (it restores histories holding new ``StepCompleted`` records) and
   the worker is replaced by the new release (it reads old ``ExecuteStep`` records).

Every run finishes with the right result and nothing is dead-lettered.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from engine import Registry
from schemas import Codec
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import consumer
from support import eventually

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
RUNS = 6


def newer_schemas(into: Path) -> Path:
    """A copy of the ``schemas`` package with an optional field added to StepCompleted and ExecuteStep."""
    import schemas

    source = Path(schemas.__file__).parent
    target = into / "schemas"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("StepCompleted", "ExecuteStep"):
        path = target / f"{name}.avsc"
        schema = json.loads(path.read_text("utf-8"))
        schema["fields"].append(
            {"name": "upgrade_note", "type": ["null", "string"], "default": None, "doc": "Added by the new release."}
        )
        path.write_text(json.dumps(schema, indent=2))
    return into


@dataclasses.dataclass
class Release:
    """Processes of one release: the environment they start with."""

    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    def spawn(self, command: str, name: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", command, "-A", "upgrade_workflows"],
                env=self.env,
                cwd=self.logs,  # not the checkout: `python -m` puts the working directory first on sys.path
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
async def releases(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Settings, Release, Release, Path]]:
    tag = uuid.uuid4().hex[:6]
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-upg{tag}", keyspace=f"{settings.keyspace}_upg{tag}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    base = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(own.partitions),
        "KFLOW_BOOTSTRAP": own.bootstrap,
        "KFLOW_CASSANDRA": own.cassandra,
        "KFLOW_KEYSPACE": own.keyspace,
    }
    paths = os.environ.get("PYTHONPATH", "")
    old = Release({**base, "KFLOW_HOME": str(tmp_path / "old"), "PYTHONPATH": f"{HERE}{os.pathsep}{paths}"}, tmp_path)
    overlay = newer_schemas(tmp_path / "new-release")
    new_env = {
        **base,
        "KFLOW_HOME": str(tmp_path / "new"),
        "PYTHONPATH": f"{overlay}{os.pathsep}{HERE}{os.pathsep}{paths}",
    }
    new = Release(new_env, tmp_path)
    yield own, old, new, overlay / "schemas"
    for proc in old.procs + new.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def read_topic(settings: Settings, topic: str) -> list[bytes]:
    """Every committed record value of ``topic`` (read to its end)."""
    reader = consumer(settings.bootstrap)
    await reader.start()
    values: list[bytes] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        for tp in tps:
            while await reader.position(tp) < ends[tp]:
                values += [m.value for m in (await reader.getmany(tp, timeout_ms=1000)).get(tp, []) if m.value]
    finally:
        await reader.stop()
    return values


def logs(release: Release) -> Iterator[str]:
    for path in sorted(release.logs.glob("*.log")):
        yield f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"


async def test_a_rolling_upgrade_and_a_rollback_mid_run_finish_every_run(
    releases: tuple[Settings, Release, Release, Path],
) -> None:
    settings, old, new, newer = releases
    topics = Topics(settings.topic_prefix)
    old_orchestrator = old.spawn("processor", "old-processor")
    old_worker = old.spawn("worker", "old-worker")
    async with Client(settings=settings, registry=Registry.from_module("upgrade_workflows")) as client:
        run_ids = [await client.start("staged", i) for i in range(1, RUNS + 1)]

        async def waiting_on(name: str) -> bool:  # every run has reached the hook
            for run_id in run_ids:
                events = await client.get_events(run_id)
                if not any(getattr(e, "token", None) == f"{run_id}:{name}" for e in events):
                    return False
            return True

        await eventually(
            lambda: waiting_on("upgrade"), timeout=90, interval=0.5, what="every run to reach the first hook"
        )

        # 2. upgrade the orchestrator; the old worker keeps running and meets ExecuteStep of the new schema
        stop(old_orchestrator)
        new.spawn("processor", "new-processor")
        for run_id in run_ids:
            await client.resume_hook(f"{run_id}:upgrade", "up", wait=False)
        await eventually(
            lambda: waiting_on("rollback"), timeout=120, interval=0.5, what="every run to reach the second hook"
        )

        # 3. roll back the orchestrator, upgrade the worker
        for proc in new.procs:
            stop(proc)
        stop(old_worker)
        old.spawn("processor", "old-processor-again")
        new.spawn("worker", "new-worker")
        for run_id in run_ids:
            await client.resume_hook(f"{run_id}:rollback", "down", wait=False)
        results = [await client.result(run_id, timeout=120) for run_id in run_ids]

    assert results == [[2 * x, 4 * x, 8 * x, "up", "down"] for x in range(1, RUNS + 1)], "\n".join(logs(old))
    assert await read_topic(settings, topics.dlq) == []
    published = {json.loads(v)["name"].rpartition(".")[2] for v in await read_topic(settings, topics.name("schemas"))}
    assert {"StepCompleted", "ExecuteStep"} <= published
    history = await read_topic(settings, topics.history)
    written = {(Codec(newer).decode(v).name, v[2:10].hex()) for v in history}
    for codec in (Codec(), Codec(newer)):  # both releases wrote history
        assert ("StepCompleted", codec.fingerprint("StepCompleted").hex()) in written, written
