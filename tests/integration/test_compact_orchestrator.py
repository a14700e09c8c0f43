"""A compacted run with the orchestrator and the materializer running (``hook_workflows``): its marker is
tombstoned on the state topic and a late record for it becomes a dead letter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from compact_support import CODEC
from engine import Registry
from engine.runtime import CancelWorkflow, SystemClock
from storage import CassandraConnection, CassandraTarget, RunRow, RunStore, StorageError
from streams import (
    Client,
    HistoryMaterializer,
    HookDeliveryError,
    Orchestrator,
    Settings,
    Topics,
    create_topics,
    partition_for,
)
from streams.ops import compact
from support import eventually

pytestmark = pytest.mark.integration


async def _read_topic(
    bootstrap: str, topic: str, partition: int, key: bytes, enough: Callable[[list[Any]], bool], decode: bool = True
) -> list[Any]:
    """Values (decoded, None for a tombstone) of ``key`` on one partition, read-committed, until ``enough``."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await reader.start()
    found: list[Any] = []
    try:
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        reader.seek(tp, 0)

        async def read_enough() -> bool:
            if enough(found):
                return True
            for message in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                if message.key == key:
                    found.append(
                        None
                        if message.value is None
                        else CODEC.codec.decode(message.value)
                        if decode
                        else message.value
                    )
            return False

        await eventually(
            read_enough, interval=0, what=lambda: f"{topic}[{partition}] to have what was expected; found: {found}"
        )
    finally:
        await reader.stop()
    return found


async def test_a_compacted_run_is_forgotten_by_the_orchestrator_and_a_late_record_goes_to_the_dlq(
    settings: Settings,
) -> None:
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-compact-e2e", keyspace=f"{settings.keyspace}_ce2e")
    topics = Topics(own.topic_prefix)
    await create_topics(own.bootstrap, topics, own.partitions)
    registry = Registry.from_module("hook_workflows")
    orchestrator, materializer = Orchestrator(own, registry), HistoryMaterializer(own)
    await orchestrator.start()
    await materializer.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            done = await client.start("instant")
            waiting = await client.start("approve", "o-1")  # waits for its hook: never compacted
            assert await client.result(done, timeout=30) == "done"
            host, port = own.cassandra_host_port
            with CassandraConnection(CassandraTarget(host, port)) as conn:
                await eventually(
                    lambda: (row := _row_if_ready(conn, own, done)) is not None and row.status == "completed",
                    interval=0.1,
                    what="the finished run to reach Cassandra",
                )
            key, partition = done.encode(), partition_for(done.encode(), own.partitions)

            report = await compact(
                own, older_than_ms=0, purge_history=True, dry_run=False, now_ms=SystemClock().now_ms()
            )
            assert (report.runs, report.histories_purged) == (1, 1)

            # The orchestrator tombstones the run's marker on the state topic ...
            state = await _read_topic(
                own.bootstrap, topics.name("state"), partition, key, lambda found: bool(found) and found[-1] is None
            )
            assert [getattr(value, "name", None) for value in state][-2:] == ["RunMarker", None]
            # ... and a later record for the run is a dead letter, not a restart.
            with pytest.raises(HookDeliveryError, match=f"no run {done} on this partition"):
                await client.resume_hook(f"{done}:approval", {"ok": True})
            # Client.cancel sends nothing for a run its history shows finished: the record goes out by hand.
            late = CancelWorkflow(run_id=done, reason="late", requested_at=SystemClock().now_ms())
            sender = AIOKafkaProducer(bootstrap_servers=own.bootstrap, acks="all")
            await sender.start()
            try:
                await sender.send_and_wait(topics.inbox, CODEC.encode(late), key=key)
            finally:
                await sender.stop()
            letters = await _read_topic(
                own.bootstrap,
                topics.dlq,
                partition,
                key,
                lambda found: any(CODEC.codec.decode(v.record["value"]).name == "CancelWorkflow" for v in found),
            )
            reasons = {CODEC.codec.decode(v.record["value"]).name: v.record["reason"] for v in letters}
            assert reasons["CancelWorkflow"] == f"no run {done} on this partition"

            # The running run was not touched.
            assert await client.resume_hook(f"{waiting}:approval", {"ok": True}) == "delivered"
            assert await client.result(waiting, timeout=30) == {"order_id": "o-1", "approved": True}
            with CassandraConnection(CassandraTarget(host, port)) as conn:
                row = RunStore(conn, own.keyspace).get_run(done)
                assert row is not None and row.status == "completed" and row.history_purged
    finally:
        await materializer.stop()
        await orchestrator.stop()


def _row_if_ready(conn: CassandraConnection, settings: Settings, run_id: str) -> RunRow | None:
    """The run's row once the materializer migrated the keyspace and wrote it (None before)."""
    try:
        return RunStore(conn, settings.keyspace).get_run(run_id)
    except StorageError:
        return None
