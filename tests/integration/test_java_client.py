"""The Java client (``clients/java/``) against the real broker: kflow's wire contract from another language.

The client is built once per session with Maven (``mvn`` is a requirement of the project, as for the dev
servers: a machine without it fails here). Java starts Python workflows and reads their results, reads the
result of a run Python started, reports a failed run, follows a continue-as-new chain, prints a result in
another payload codec raw, and reports usage errors, an unreachable Kafka and a timeout with its exit status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from engine import Registry
from schemas import Codec
from streams import Client, Settings, Topics, create_topics, partition_for
from streams.kafka import close_producer, producer, read_partition
from streams.processors import Orchestrator, StepWorker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "clients" / "java" / "pom.xml"
JAR = ROOT / "clients" / "java" / "target" / "kflow-client.jar"
CODEC = Codec()


@dataclasses.dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


@dataclasses.dataclass
class App:
    settings: Settings
    client: Client


@pytest.fixture(scope="session")
def java_client() -> Path:
    """``clients/java/target/kflow-client.jar``, built by Maven once per session."""
    mvn = shutil.which("mvn")
    assert mvn is not None, "mvn not found: the Java client is built with Maven (a requirement, like Java 17)"
    assert shutil.which("java") is not None, "java not found (Java 17 is a requirement)"
    started = time.monotonic()
    done = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "package"], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"mvn package failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert JAR.is_file(), f"mvn package did not make {JAR}"
    print(f"clients/java built in {time.monotonic() - started:.1f} s")
    return JAR


@pytest.fixture(scope="module")
async def app(settings: Settings, java_client: Path) -> AsyncIterator[App]:
    """An orchestrator and a step worker for ``java_workflows`` in this process, on a topic prefix of their own."""
    own = dataclasses.replace(settings, topic_prefix=f"{settings.topic_prefix}-java")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("java_workflows")
    orchestrator = Orchestrator(own, registry)
    worker = StepWorker(own, registry, concurrency=4)
    for service in (orchestrator, worker):
        await service.start()
    async with Client(settings=own, registry=registry) as client:
        yield App(own, client)
    for service in (worker, orchestrator):
        await service.stop()


async def java(settings: Settings, *args: str, bootstrap: str | None = None, timeout: float = 120.0) -> Done:
    """Run the Java client's command line (without blocking the processors on this event loop)."""
    env = dict(os.environ, KFLOW_BOOTSTRAP=bootstrap or settings.bootstrap, KFLOW_TOPIC_PREFIX=settings.topic_prefix)
    proc = await asyncio.create_subprocess_exec(
        "java", "-jar", str(JAR), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode("utf-8"), err.decode("utf-8"))


async def inbox_record(settings: Settings, run_id: str) -> tuple[int, bytes, bytes]:
    """(partition, key, value) of the record keyed ``run_id`` on ``<prefix>.inbox``, wherever it is."""
    topic = Topics(settings.topic_prefix).inbox
    for partition in range(settings.partitions):
        async for record in read_partition(settings.bootstrap, TopicPartition(topic, partition), None):
            if record.key == run_id.encode():
                assert record.value is not None
                return partition, record.key, record.value
    raise AssertionError(f"no record keyed {run_id} on {topic}")


def expected_greeting(name: str, punctuation: str) -> dict[str, object]:
    text = f"Grüß dich, {name}{punctuation}"
    return {"greeting": text, "name": name, "length": len(text), "ratio": 2.5, "tags": [None, True]}


async def test_java_starts_python_workflows_with_records_python_writes(app: App) -> None:
    calls = {  # name: (ARGS_JSON, the call it stands for, the punctuation the workflow uses)
        "Ada": ('["Ada"]', {"args": ["Ada"], "kwargs": {}}, "!"),
        "Bo": ('["Bo", "?"]', {"args": ["Bo", "?"], "kwargs": {}}, "?"),
        "Cy": (
            '{"args": ["Cy"], "kwargs": {"punctuation": "."}}',
            {"args": ["Cy"], "kwargs": {"punctuation": "."}},
            ".",
        ),
    }
    before_ms = int(time.time() * 1000)
    run_ids: dict[str, str] = {}
    for name, (args, _, _) in calls.items():
        started = await java(app.settings, "start", "greet", args)
        assert (started.code, started.err) == (0, ""), started
        run_ids[name] = started.out.strip()
        assert re.fullmatch(r"[0-9a-f]{32}", run_ids[name]), started.out
    for name, run_id in run_ids.items():
        partition, key, value = await inbox_record(app.settings, run_id)
        assert partition == partition_for(key, app.settings.partitions)  # Kafka's murmur2 partitioner, as kflow's
        assert value[:2] == b"\xc3\x01"
        assert value[2:10] == CODEC.fingerprint("StartWorkflow")  # the Java schema's fingerprint is Python's
        decoded = CODEC.decode(value)
        assert decoded.name == "StartWorkflow"
        record = dict(decoded.record)
        payload, requested_at = record.pop("args"), record.pop("requested_at")
        assert isinstance(payload, dict) and payload["codec"] == "json"
        assert json.loads(payload["data"]) == calls[name][1]
        assert isinstance(requested_at, int) and before_ms - 5_000 <= requested_at <= int(time.time() * 1000)
        assert record == {
            "run_id": run_id,
            "workflow_name": "greet",
            "idempotency_key": None,
            "parent_run_id": None,
            "parent_position": None,
            "continued_from": None,
            "depth": 0,
        }
    for name, run_id in run_ids.items():
        expected = expected_greeting(name, calls[name][2])
        done = await java(app.settings, "result", run_id, "--timeout", "60")
        assert (done.code, done.err) == (0, ""), done
        assert json.loads(done.out) == expected
        assert await app.client.result(run_id, timeout=30) == expected


async def test_java_reads_the_result_of_a_run_python_started(app: App) -> None:
    run_id = await app.client.start("greet", "Dee", punctuation="!!")
    done = await java(app.settings, "result", run_id, "--timeout", "60")
    assert (done.code, done.err) == (0, ""), done
    assert json.loads(done.out) == expected_greeting("Dee", "!!")


async def test_a_failed_run_exits_1_with_its_error_on_one_line(app: App) -> None:
    started = await java(app.settings, "start", "refused", '["o-7"]')
    assert started.code == 0, started
    run_id = started.out.strip()
    done = await java(app.settings, "result", run_id, "--timeout", "60")
    assert done.code == 1, done
    assert done.out == ""
    assert done.err == f"kflow-java: error: run {run_id} failed: builtins.ValueError: order o-7 refused by the bank\n"


async def test_a_continue_as_new_chain_is_followed_to_its_last_run(app: App) -> None:
    started = await java(app.settings, "start", "hops", "[3]")
    assert started.code == 0, started
    done = await java(app.settings, "result", started.out.strip(), "--timeout", "60")
    assert (done.code, done.err) == (0, ""), done
    assert json.loads(done.out) == "landed after 321"


async def test_other_runs_are_skipped_and_another_codec_is_printed_raw(app: App) -> None:
    topic = Topics(app.settings.topic_prefix).completions
    text_run, binary_run = uuid.uuid4().hex, uuid.uuid4().hex
    now = int(time.time() * 1000)
    sender = producer(app.settings.bootstrap)
    await sender.start()
    try:
        for run_id, result in [
            (text_run, {"codec": "json+types", "data": '{"$set":[1,"é"]}'.encode()}),
            (binary_run, {"codec": "cloudpickle", "data": b"\x80\x05\xff\x00"}),
        ]:
            partition = partition_for(run_id.encode(), app.settings.partitions)
            # Before it on its partition: a record of another run that is no kflow record at all (a client that
            # decoded other runs' records would fail on it), and another run's RunFinished.
            await sender.send_and_wait(topic, b"not avro", key=uuid.uuid4().hex.encode(), partition=partition)
            other = {"run_id": "x", "workflow_name": "w", "status": "completed", "started_at": now, "finished_at": now}
            other["result"] = {"codec": "json", "data": b'"not this one"'}
            await sender.send_and_wait(topic, CODEC.encode("RunFinished", other), key=b"x", partition=partition)
            finished = {"run_id": run_id, "workflow_name": "w", "status": "completed", "result": result}
            value = CODEC.encode("RunFinished", finished | {"started_at": now, "finished_at": now})
            await sender.send_and_wait(topic, value, key=run_id.encode())
    finally:
        await close_producer(sender)
    done = await java(app.settings, "result", text_run, "--timeout", "30")
    assert (done.code, done.out, done.err) == (0, 'codec json+types: {"$set":[1,"é"]}\n', ""), done
    done = await java(app.settings, "result", binary_run, "--timeout", "30")
    assert (done.code, done.out, done.err) == (0, "codec cloudpickle (base64): gAX/AA==\n", ""), done


async def test_usage_errors_exit_2(app: App) -> None:
    for args in [(), ("result",), ("start",), ("start", "greet", "{not json"), ("start", "greet", '{"x": 1}')]:
        done = await java(app.settings, *args)
        assert done.code == 2, (args, done)
        assert done.out == ""
        assert done.err.splitlines()[0].startswith("usage: ") and done.err.splitlines()[-1].startswith("kflow-java:")
    done = await java(app.settings, "result", uuid.uuid4().hex, "--timeout", "soon")
    assert done.code == 2 and "--timeout takes a positive number of seconds" in done.err, done


async def test_an_unreachable_kafka_a_missing_topic_and_a_timeout_exit_4_on_one_line(app: App) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    done = await java(app.settings, "result", uuid.uuid4().hex, "--timeout", "2", bootstrap=closed)
    assert done.code == 4, done
    assert done.out == ""
    assert re.fullmatch(rf"kflow-java: error: Kafka unreachable at {closed}[^\n]*\n", done.err), done.err
    missing = dataclasses.replace(app.settings, topic_prefix=f"{app.settings.topic_prefix}-none")
    done = await java(missing, "result", uuid.uuid4().hex, "--timeout", "10")
    assert done.code == 4 and f"topic {missing.topic_prefix}.completions does not exist" in done.err, done
    run_id = uuid.uuid4().hex  # a run nobody started: the broker answers, no completion comes
    done = await java(app.settings, "result", run_id, "--timeout", "2")
    assert (done.code, done.out, done.err) == (4, "", f"kflow-java: error: run {run_id} did not finish within 2 s\n")
