"""The smoke round trip: one kflow record through real Kafka and one row through real Cassandra."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import cast

from aiokafka import TopicPartition

from schemas import Codec, decode_payload, encode_payload
from storage import CassandraConnection
from streams import kafka
from streams._settings import Settings
from streams._topics import Topics, create_topics


async def smoke_roundtrip(settings: Settings) -> list[str]:
    """Produce a ``StartWorkflow`` record, read it back, decode it; write and read a Cassandra row.

    Returns human lines describing what happened; raises RuntimeError when a server returns something else.
    """
    # Its own topics: a StartWorkflow for "smoke" on the real inbox would reach the orchestrator.
    topics = Topics(f"{settings.topic_prefix}-smoke")
    await create_topics(
        settings.kafka_target(),
        topics,
        settings.partitions,
        replication_factor=settings.replication_factor,
        retention_ms=settings.retention_ms,
    )
    codec = Codec()
    run_id = uuid.uuid4().hex
    record = {
        "run_id": run_id,
        "workflow_name": "smoke",
        "args": encode_payload({"args": [1, "two"], "kwargs": {"three": 3.0}}),
        "idempotency_key": None,
        "parent_run_id": None,
        "parent_position": None,
        "continued_from": None,
        "requested_at": int(time.time() * 1000),
        "depth": 0,
    }
    value = codec.encode("StartWorkflow", record)
    started = time.perf_counter()
    producer = kafka.producer(settings.kafka_target())
    await producer.start()
    try:
        meta = await producer.send_and_wait(topics.inbox, value, key=run_id.encode())
    finally:
        await producer.stop()
    consumer = kafka.consumer(settings.kafka_target(), isolation_level="read_uncommitted")
    await consumer.start()
    try:
        partition = TopicPartition(topics.inbox, meta.partition)
        consumer.assign([partition])
        consumer.seek(partition, meta.offset)
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    kafka_ms = (time.perf_counter() - started) * 1000
    decoded = codec.decode(message.value)
    if decoded.name != "StartWorkflow" or decoded.record["run_id"] != run_id or message.key != run_id.encode():
        raise RuntimeError(f"Kafka round trip returned a different record: {decoded!r}")
    args = decode_payload(cast(Mapping[str, object], decoded.record["args"]))
    lines = [
        f"kafka: {topics.inbox}[{meta.partition}]@{meta.offset} StartWorkflow run {run_id} "
        f"args={args} ({len(value)} bytes, {kafka_ms:.1f} ms produce+consume)"
    ]
    lines.append(await asyncio.to_thread(_cassandra_roundtrip, settings, run_id, value))
    return lines


def _cassandra_roundtrip(settings: Settings, run_id: str, value: bytes) -> str:
    with CassandraConnection(settings.cassandra_target()) as conn:
        conn.ensure_keyspace(settings.keyspace)
        session = conn.session
        session.execute(f"CREATE TABLE IF NOT EXISTS {settings.keyspace}.smoke (run_id text PRIMARY KEY, record blob)")
        insert = session.prepare(f"INSERT INTO {settings.keyspace}.smoke (run_id, record) VALUES (?, ?)")
        select = session.prepare(f"SELECT record FROM {settings.keyspace}.smoke WHERE run_id = ?")
        started = time.perf_counter()
        session.execute(insert, (run_id, value))
        row = session.execute(select, (run_id,)).one()
        took = (time.perf_counter() - started) * 1000
    if row is None or bytes(row.record) != value:
        raise RuntimeError(f"Cassandra round trip returned {row!r}")
    return f"cassandra: {settings.keyspace}.smoke row {run_id} written and read back ({took:.1f} ms)"
