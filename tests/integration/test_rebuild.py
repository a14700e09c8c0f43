"""``kflow replay --rebuild``: Cassandra re-materialized from the Kafka history topic, idempotently."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Registry
from engine.runtime import HistoryEvent, SystemClock
from engine.testing import FakeClock, InMemoryDriver
from schemas import RecordCodec
from storage import CassandraConnection, CassandraTarget, RunStore
from streams import Settings, Topics, create_topics
from streams.kafka import producer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def _histories(count: int) -> dict[str, list[HistoryEvent]]:
    driver = InMemoryDriver(Registry.from_module("e2e_workflows"), FakeClock(SystemClock().now_ms()))
    run_ids = [driver.start("sum_three", i, i, i) for i in range(count)]
    await driver.run_until_idle()
    return {run_id: driver.history(run_id) for run_id in run_ids}


async def _produce(settings: Settings, histories: dict[str, list[HistoryEvent]]) -> None:
    records = RecordCodec()
    out = producer(settings.bootstrap)
    await out.start()
    try:
        for run_id, events in histories.items():
            for event in events:
                await out.send(Topics(settings.topic_prefix).history, records.encode(event), key=run_id.encode())
        await out.flush()
    finally:
        await out.stop()


def _rebuild(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_KEYSPACE": settings.keyspace,
        "KFLOW_PARTITIONS": str(settings.partitions),
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--rebuild", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


async def test_rebuild_writes_the_history_topic_and_is_idempotent(settings: Settings) -> None:
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-rebuild", keyspace=f"{settings.keyspace}_rebuild")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    first = await _histories(5)
    await _produce(own, first)
    total = sum(len(h) for h in first.values())

    done = _rebuild(own)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{total:,} events written" in done.stdout
    host, port = own.cassandra_host_port
    with CassandraConnection(CassandraTarget(host, port)) as conn:
        store = RunStore(conn, own.keyspace)
        for run_id, history in first.items():
            assert store.events(run_id) == list(history)
            row = store.get_run(run_id)
            assert row is not None and row.status == "completed"
        conn.session.execute(f"TRUNCATE {own.keyspace}.events")
        assert store.events(next(iter(first))) == []

    again = _rebuild(own)  # over a truncated table: everything comes back, nothing doubles
    assert again.returncode == 0 and f"{total:,} events written" in again.stdout
    with CassandraConnection(CassandraTarget(host, port)) as conn:
        store = RunStore(conn, own.keyspace)
        assert all(store.events(run_id) == list(history) for run_id, history in first.items())
        rows = conn.session.execute(f"SELECT count(*) FROM {own.keyspace}.events").one()
        assert rows[0] == total

    time.sleep(0.05)  # Kafka record timestamps are milliseconds: the later batch must be strictly later
    since = datetime.now(UTC).isoformat()
    later = await _histories(2)
    await _produce(own, later)
    partial = _rebuild(own, "--from", since)
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert f"{sum(len(h) for h in later.values()):,} events written" in partial.stdout
