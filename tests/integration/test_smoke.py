"""One kflow record through real Kafka and one row through real Cassandra (the foundation's proof)."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from schemas import Codec, encode_payload
from storage import CassandraConnection, CassandraTarget
from streams import Settings, Topics
from streams.dev import smoke_roundtrip
from support import eventually

pytestmark = pytest.mark.integration


def _start_record(run_id: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "workflow_name": "smoke",
        "args": encode_payload({"args": [1], "kwargs": {}}),
        "idempotency_key": None,
        "parent_run_id": None,
        "parent_position": None,
        "continued_from": None,
        "requested_at": int(time.time() * 1000),
        "depth": 0,
    }


async def test_kafka_carries_single_object_encoded_records_keyed_by_raw_run_id(settings: Settings) -> None:
    codec = Codec()
    topics = Topics(settings.topic_prefix)
    run_ids = [uuid.uuid4().hex for _ in range(8)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        sent = {
            rid: await producer.send_and_wait(
                topics.inbox, codec.encode("StartWorkflow", _start_record(rid)), key=rid.encode()
            )
            for rid in run_ids
        }
    finally:
        await producer.stop()
    # Invariant under test: the partition is murmur2 of the raw UTF-8 run id, as any Java/Go client computes it.
    partitions = list(range(settings.partitions))
    for rid, meta in sent.items():
        assert meta.partition == DefaultPartitioner()(rid.encode(), partitions, partitions)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        seen: dict[str, bytes] = {}
        for partition in partitions:
            tp = TopicPartition(topics.inbox, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]

            async def read_to_end(tp: TopicPartition = tp, end: int = end) -> bool:
                if await consumer.position(tp) >= end:
                    return True
                batch = await consumer.getmany(tp, timeout_ms=5000)
                for message in batch.get(tp, []):
                    seen[message.key.decode()] = message.value
                return False

            await eventually(read_to_end, interval=0, what=f"{topics.inbox}[{partition}] to be read to its end")
    finally:
        await consumer.stop()
    for rid in run_ids:
        raw = seen[rid]
        assert raw[:2] == b"\xc3\x01"
        assert raw[2:10] == codec.fingerprint("StartWorkflow")
        decoded = codec.decode(raw)
        assert decoded.name == "StartWorkflow" and decoded.record["run_id"] == rid


async def test_smoke_roundtrip_reports_both_servers(settings: Settings) -> None:
    lines = await smoke_roundtrip(settings)
    assert lines[0].startswith(f"kafka: {settings.topic_prefix}-smoke.inbox[")
    assert lines[1].startswith(f"cassandra: {settings.keyspace}.smoke row ")


def test_cassandra_row_roundtrip_in_session_keyspace(settings: Settings) -> None:
    host, port = settings.cassandra_host_port
    with CassandraConnection(CassandraTarget(host, port)) as conn:
        assert conn.release_version().startswith("5.0")
        conn.ensure_keyspace(settings.keyspace)
        session = conn.session
        session.execute(f"CREATE TABLE IF NOT EXISTS {settings.keyspace}.probe (k text PRIMARY KEY, v bigint)")
        key = uuid.uuid4().hex
        session.execute(session.prepare(f"INSERT INTO {settings.keyspace}.probe (k, v) VALUES (?, ?)"), (key, 42))
        row = session.execute(session.prepare(f"SELECT v FROM {settings.keyspace}.probe WHERE k = ?"), (key,)).one()
        assert row.v == 42
