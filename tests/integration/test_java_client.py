"""The Java client (``clients/java/``) against the real broker: kflow's wire contract from another language.

The client is built once per session with Maven (``mvn`` is a requirement of the project, as for the dev
servers: a machine without it fails here). Java starts Python workflows and reads their results, reads the
result of a run Python started, reports a failed run, follows a continue-as-new chain, prints a result in
another payload codec raw, and reports usage errors, an unreachable Kafka and a timeout with its exit status.
Before its first send it publishes its writer schema to ``<prefix>.schemas`` as Python would (creating that
topic as kflow declares it when missing). The whole ``schemas/`` directory loads into one Apache Avro parser,
with the client's Avro 1.12 and with Avro 1.11 (``clients/java/avro-1.11-check/``), to Python's fingerprints.
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
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from engine import Registry
from schemas import Codec, learn_schema
from streams import Client, Settings, Topics, check_topics, create_topics, partition_for
from streams.kafka import close_producer, producer, read_partition
from streams.processors import Orchestrator, StepWorker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "clients" / "java" / "pom.xml"
JAR = ROOT / "clients" / "java" / "target" / "kflow-client.jar"
AVRO_111_POM = ROOT / "clients" / "java" / "avro-1.11-check" / "pom.xml"
FINGERPRINTS_JAVA = ROOT / "clients" / "java" / "src" / "main" / "java" / "kflow" / "client" / "SchemaFingerprints.java"
SCHEMAS = ROOT / "schemas"
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


@pytest.fixture(scope="session")
def avro_111_classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The class path of Apache Avro 1.11 (``clients/java/avro-1.11-check/pom.xml``), resolved by Maven once."""
    mvn = shutil.which("mvn")
    assert mvn is not None, "mvn not found: the Avro 1.11 check resolves its class path with Maven"
    out = tmp_path_factory.mktemp("avro-1.11") / "classpath.txt"
    started = time.monotonic()
    command = [mvn, "-q", "-B", "-f", str(AVRO_111_POM), "dependency:build-classpath", f"-Dmdep.outputFile={out}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"mvn dependency:build-classpath failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    classpath = out.read_text().strip()
    jars = [Path(jar).name for jar in classpath.split(os.pathsep)]
    assert [jar for jar in jars if jar.startswith("avro-")] == ["avro-1.11.4.jar"], jars
    print(f"Avro 1.11 class path resolved in {time.monotonic() - started:.1f} s")
    return classpath


@pytest.fixture(scope="module")
async def app(settings: Settings, java_client: Path) -> AsyncIterator[App]:
    """An orchestrator and a step worker for ``java_workflows`` in this process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-java")
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


def own_prefix(settings: Settings, name: str) -> Settings:
    """``settings`` with a topic prefix of its own under the session's (its topics are dropped with the session's)."""
    return settings.replace(topic_prefix=f"{settings.topic_prefix}-{name}-{uuid.uuid4().hex[:8]}")


async def topics_named(settings: Settings) -> set[str]:
    """The names of the existing topics under ``settings.topic_prefix``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        return {name for name in await admin.list_topics() if name.startswith(f"{settings.topic_prefix}.")}
    finally:
        await admin.close()


async def schema_records(settings: Settings) -> dict[int, list[tuple[bytes | None, bytes | None, int]]]:
    """Partition -> (key, value, timestamp) of every record on ``<prefix>.schemas``."""
    topic = Topics(settings.topic_prefix).name("schemas")
    return {
        partition: [
            (record.key, record.value, record.timestamp)
            async for record in read_partition(settings.bootstrap, TopicPartition(topic, partition), None)
        ]
        for partition in range(settings.partitions)
    }


def check_fingerprints(command: list[str], avro: str) -> None:
    """``command`` prints the Avro version, then ``NAME FINGERPRINT_HEX`` for each record schema of ``schemas/``:
    Avro ``avro``.* parsed every one of them, into one parser, to the fingerprint Python computes."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done
    header, *lines = done.stdout.splitlines()
    assert header.startswith(f"# Apache Avro {avro}."), header
    printed = dict(line.split(" ") for line in lines)
    assert len(printed) == len(lines), lines
    assert sorted(printed) == sorted(path.stem for path in SCHEMAS.glob("*.avsc")), printed  # no file left out
    assert printed == {name: CODEC.fingerprint(name).hex() for name in printed}


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
            **dict.fromkeys(("idempotency_key", "parent_run_id", "parent_position", "continued_from"), None),
            "depth": 0,
            "chain_attempt": None,  # null = the first run of its chain
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
    bad = [(), ("result",), ("start",), ("start", "greet", "{not json"), ("start", "greet", '{"x": 1}'), ("schemas",)]
    for args in [*bad, ("schemas", str(SCHEMAS), "more"), ("stop",)]:
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
    missing = app.settings.replace(topic_prefix=f"{app.settings.topic_prefix}-none")
    done = await java(missing, "result", uuid.uuid4().hex, "--timeout", "10")
    assert done.code == 4 and f"topic {missing.topic_prefix}.completions does not exist" in done.err, done
    run_id = uuid.uuid4().hex  # a run nobody started: the broker answers, no completion comes
    done = await java(app.settings, "result", run_id, "--timeout", "2")
    assert (done.code, done.out, done.err) == (4, "", f"kflow-java: error: run {run_id} did not finish within 2 s\n")


async def test_start_publishes_its_writer_schema_to_dot_schemas_first(settings: Settings, java_client: Path) -> None:
    own = own_prefix(settings, "javaschemas")  # no Python process writes here: every schema record is Java's
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    started = await java(own, "start", "greet", '["Eve"]')
    assert (started.code, started.err) == (0, ""), started
    records = await schema_records(own)
    assert all(not found for partition, found in records.items() if partition != 0), records  # all on partition 0
    assert len(records[0]) == 1, records[0]  # once, before the one record this process sent
    key, value, published_at = records[0][0]
    fingerprint = CODEC.fingerprint("StartWorkflow")
    assert key == fingerprint.hex().encode()
    assert value is not None and json.loads(value)["name"] == "StartWorkflow"
    assert learn_schema(value) == fingerprint  # the full schema: Python computes the same fingerprint from it
    topic = Topics(own.topic_prefix).inbox
    partition = partition_for(started.out.strip().encode(), own.partitions)
    (sent,) = [r async for r in read_partition(own.bootstrap, TopicPartition(topic, partition), None)]
    assert sent.value is not None and sent.value[2:10] == fingerprint
    assert published_at <= sent.timestamp  # acknowledged before the StartWorkflow was sent


async def test_a_missing_schemas_topic_is_created_as_kflow_declares_it_a_missing_inbox_is_an_error(
    settings: Settings, java_client: Path
) -> None:
    own = own_prefix(settings, "javanoschemas")
    topics = Topics(own.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=own.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topics.inbox, num_partitions=own.partitions, replication_factor=1)])
    finally:
        await admin.close()
    started = await java(own, "start", "greet", '["Flo"]')
    assert (started.code, started.err) == (0, ""), started
    assert await topics_named(own) == {topics.inbox, topics.name("schemas")}
    drift = await check_topics(own.bootstrap, topics, own.partitions)
    assert [d for d in drift if d.topic == topics.name("schemas")] == []  # compacted, partitions as .inbox, …
    records = await schema_records(own)
    assert [key for key, _, _ in records[0]] == [CODEC.fingerprint("StartWorkflow").hex().encode()]

    none = own_prefix(settings, "javanoinbox")
    done = await java(none, "start", "greet", '["Gil"]')
    assert (done.code, done.out) == (4, ""), done
    missing = Topics(none.topic_prefix).inbox
    assert done.err == f"kflow-java: error: topic {missing} does not exist (kflow topics create makes it)\n"
    assert await topics_named(none) == set()  # neither topic was created (as a broker auto-creates on a send)


def test_schemas_load_into_one_avro_1_12_parser_to_pythons_fingerprints(java_client: Path) -> None:
    check_fingerprints(["java", "-jar", str(java_client), "schemas", str(SCHEMAS)], "1.12")


def test_schemas_load_into_one_avro_1_11_parser_to_pythons_fingerprints(avro_111_classpath: str) -> None:
    # the client's own SchemaFingerprints.java, run as a single-file program on Avro 1.11's class path
    check_fingerprints(["java", "-cp", avro_111_classpath, str(FINGERPRINTS_JAVA), str(SCHEMAS)], "1.11")


def test_the_kafka_security_variables_become_client_properties(java_client: Path, tmp_path: Path) -> None:
    def config(**env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
        command = ["java", "-jar", str(java_client), "config"]
        return subprocess.run(command, capture_output=True, text=True, env={**clean, **env}, timeout=60, check=False)

    (tmp_path / "c.pem").write_text("CHAIN")
    (tmp_path / "k.pem").write_text("KEY")
    secure = {"KFLOW_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}
    secure |= {"KFLOW_KAFKA_USERNAME": "ops", "KFLOW_KAFKA_PASSWORD": 'p"w\\d', "KFLOW_KAFKA_CA_FILE": "/ca.pem"}
    secure |= {"KFLOW_KAFKA_CERT_FILE": str(tmp_path / "c.pem"), "KFLOW_KAFKA_KEY_FILE": str(tmp_path / "k.pem")}
    done = config(**secure, KFLOW_KAFKA_KEY_PASSWORD="kp", KFLOW_KAFKA_CHECK_HOSTNAME="false")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.splitlines() == [
        "bootstrap.servers=127.0.0.1:9092",
        'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ops" '
        "password=[hidden];",
        "sasl.mechanism=SCRAM-SHA-512",
        "security.protocol=SASL_SSL",
        "ssl.endpoint.identification.algorithm=",
        "ssl.key.password=[hidden]",
        "ssl.keystore.certificate.chain=CHAIN",
        "ssl.keystore.key=[hidden]",
        "ssl.keystore.type=PEM",
        "ssl.truststore.location=/ca.pem",
        "ssl.truststore.type=PEM",
        "topic.prefix=kflow",
    ]
    plain = config(KFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KFLOW_KAFKA_USERNAME="u", KFLOW_KAFKA_PASSWORD="pw")
    assert "PlainLoginModule required" in plain.stdout and "pw" not in plain.stdout.replace("password", "")
    bad = config(KFLOW_KAFKA_USERNAME="u")  # PLAINTEXT: a login would be ignored, so it is refused
    assert (bad.returncode, bad.stdout) == (2, "") and bad.stderr.startswith("kflow-java: error: KFLOW_KAFKA_USERNAME")
    missing = config(**{**secure, "KFLOW_KAFKA_KEY_FILE": str(tmp_path / "none.pem")})
    assert (
        missing.returncode == 4 and "cannot use KFLOW_KAFKA_KEY_FILE" in missing.stderr and 'p"w' not in missing.stderr
    )
