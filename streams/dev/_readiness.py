"""Readiness probes: a server counts as up only after a real client round trip."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from storage import CassandraConnection, CassandraTarget
from streams.dev._jvm import DevStackError
from streams.dev._secure import CassandraLogin, KafkaLogin
from streams.dev._secure_cassandra import secure_cassandra_ready

_READINESS_TOPIC = "__kflow_readiness"


async def kafka_ready(bootstrap: str, timeout: float, brokers: int = 1, login: KafkaLogin | None = None) -> None:
    """Return once ``bootstrap`` takes a produce (acks=all) and serves it back to a group consumer.

    The group consumer also makes the broker create ``__consumer_offsets``, so the first real consumer
    group of a test does not pay for it. With ``brokers`` > 1, the cluster metadata must also list that many
    brokers (each one registered and unfenced), and the readiness topic is replicated min(3, brokers) times.
    ``login``: a secure stack's super user (SASL_SSL).

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
                await asyncio.wait_for(
                    _kafka_roundtrip(bootstrap, brokers, login.options() if login else {}),
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                return
            except Exception as exc:  # refused, not yet unfenced, coordinator loading...
                last = exc
                await asyncio.sleep(0.5)
    finally:
        quiet.setLevel(level)
    raise DevStackError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {last!r}")


async def _every_broker_sees_all(bootstrap: str, brokers: int, security: dict[str, Any]) -> None:
    # Asked one by one: a broker killed a moment ago stays registered until its session times out, so only
    # its own answer proves a restarted broker is serving.
    for address in bootstrap.split(","):
        admin = AIOKafkaAdminClient(bootstrap_servers=address, request_timeout_ms=5000, **security)
        await admin.start()
        try:
            registered = len((await admin.describe_cluster())["brokers"])
        finally:
            await admin.close()
        if registered < brokers:
            raise DevStackError(f"{address} sees {registered} of {brokers} brokers")


async def _kafka_roundtrip(bootstrap: str, brokers: int, security: dict[str, Any]) -> None:
    if brokers > 1:
        await _every_broker_sees_all(bootstrap, brokers, security)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **security)
    await admin.start()
    try:
        topic = NewTopic(_READINESS_TOPIC, num_partitions=1, replication_factor=min(3, brokers))
        await admin.create_topics([topic])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **security)
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
        **security,
    )
    await consumer.start()
    try:
        async for message in consumer:
            if message.value == token:
                await consumer.commit()
                return
    finally:
        await consumer.stop()


def cassandra_ready(host: str, port: int, timeout: float, login: CassandraLogin | None = None) -> str:
    """Return Cassandra's release version once ``SELECT release_version FROM system.local`` answers.

    ``login``: a secure node, asked over TLS as that role; on its first start the role is created first
    (``secure_roles``).

    Raises:
        DevStackError: when it did not answer within ``timeout`` seconds.
    """
    if login is not None:
        return secure_cassandra_ready(host, port, timeout, login)
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
