"""``kflow dev up --brokers 3``: a real 3-node KRaft cluster beside the default stack (own home, port offset)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import Settings

pytestmark = pytest.mark.integration

OFFSET = 3000  # test_chaos uses 2000, bench.chaos 1000: all may run beside the default stack
BOOTSTRAP = "127.0.0.1:12092,127.0.0.1:12094,127.0.0.1:12096"


def kflow(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KFLOW_HOME": str(home), "KFLOW_DEV_PORT_OFFSET": str(OFFSET)}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env)


def pids(home: Path) -> dict[str, int | None]:
    return {s["name"]: s["pid"] for s in json.loads(kflow(home, "dev", "status", "--json").stdout)}


async def replicated_roundtrip() -> int:
    """Creates a topic replicated 3 times, round-trips one record; returns the broker count the cluster shows."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        await admin.create_topics([NewTopic("rf3", num_partitions=1, replication_factor=3)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait("rf3", b"replicated")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition("rf3", 0)])
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.value == b"replicated"
    return brokers


@pytest.mark.skipif(bool(os.environ.get("KFLOW_BOOTSTRAP")), reason="servers are external")
def test_three_brokers_survive_a_killed_broker(tmp_path: Path) -> None:
    home = tmp_path / "kflow"
    shared_jars = Settings.from_env().home / "jars"  # fetched once per machine, not once per test
    shared_jars.mkdir(parents=True, exist_ok=True)
    home.mkdir()
    (home / "jars").symlink_to(shared_jars)
    try:
        up = kflow(home, "dev", "up", "--brokers", "3", "--kafka-only")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"export KFLOW_BOOTSTRAP={BOOTSTRAP}\n" in up.stdout
        assert asyncio.run(replicated_roundtrip()) == 3
        before = pids(home)
        assert list(before) == ["kafka-1", "kafka-2", "kafka-3"] and all(before.values())

        victim = before["kafka-2"]
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pids(home)["kafka-2"] is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert kflow(home, "dev", "status").returncode == 4  # one server down

        again = kflow(home, "dev", "up")  # remembered: 3 brokers, Kafka only, offset 3000
        assert again.returncode == 0, again.stdout + again.stderr
        assert "kafka-1: already running" in again.stdout and "kafka-3: already running" in again.stdout
        after = pids(home)
        assert (after["kafka-1"], after["kafka-3"]) == (before["kafka-1"], before["kafka-3"])
        assert after["kafka-2"] not in (None, victim)

        resize = kflow(home, "dev", "up", "--brokers", "1")
        assert resize.returncode == 1 and "kflow dev down --wipe" in resize.stderr
    finally:
        down = kflow(home, "dev", "down", "--wipe")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (home / "run").exists()
