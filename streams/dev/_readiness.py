"""Readiness probes: a server counts as up only after a real client round trip."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from storage import CassandraConnection, CassandraTarget
from streams.dev._jvm import DevStackError

_READINESS_TOPIC = "__kflow_readiness"


async def kafka_ready(bootstrap: str, timeout: float) -> None:
    """Return once ``bootstrap`` takes a produce (acks=all) and serves it back to a group consumer.

    The group consumer also makes the broker create ``__consumer_offsets``, so the first real consumer
    group of a test does not pay for it.

    Raises:
        DevStackError: when no round trip succeeded within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    quiet = logging.getLogger("aiokafka")
    level, quiet.level = quiet.level, logging.CRITICAL  # connection-refused noise while the broker boots
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(_kafka_roundtrip(bootstrap), timeout=max(1.0, deadline - time.monotonic()))
                return
            except Exception as exc:  # refused, not yet unfenced, coordinator loading...
                last = exc
                await asyncio.sleep(0.5)
    finally:
        quiet.setLevel(level)
    raise DevStackError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {last!r}")


async def _kafka_roundtrip(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(_READINESS_TOPIC, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(_READINESS_TOPIC, token, key=b"ready")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        _READINESS_TOPIC,
        bootstrap_servers=bootstrap,
        group_id="kflow-readiness",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for message in consumer:
            if message.value == token:
                await consumer.commit()
                return
    finally:
        await consumer.stop()


def cassandra_ready(host: str, port: int, timeout: float) -> str:
    """Return Cassandra's release version once ``SELECT release_version FROM system.local`` answers.

    Raises:
        DevStackError: when it did not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    quiet = logging.getLogger("cassandra")
    level, quiet.level = quiet.level, logging.CRITICAL
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            try:
                with CassandraConnection(CassandraTarget(host, port), connect_timeout=3) as conn:
                    return conn.release_version()
            except Exception as exc:  # refused or timed out while the node boots
                last = exc
                time.sleep(1.0)
    finally:
        quiet.setLevel(level)
    raise DevStackError(f"Cassandra at {host}:{port} not ready after {timeout:.0f}s: {last!r}")
