"""Replication and retention on the real (single-broker, single-node) servers: the topic configs kflow creates,
``kflow topics create`` refusing over drifted topics, ``kflow topics check``, a keyspace migrated with a
NetworkTopologyStrategy replication, and a session with a local datacenter and consistency levels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from compact_support import history
from engine.runtime import SystemClock
from storage import CassandraConnection, CassandraTarget, HistoryWriter, RunStore, migrate, parse_replication
from streams import TOPIC_SPECS, Settings, Topics, create_topics, topic_config
from support import eventually

pytestmark = pytest.mark.integration

DEFAULT_RETENTION_MS = 30 * 86_400_000


def kflow(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m streams.cli ARGS`` on ``settings``' servers, prefix and keyspace (``env`` wins)."""
    full_env = {
        **os.environ,
        "KFLOW_BOOTSTRAP": settings.bootstrap,
        "KFLOW_CASSANDRA": settings.cassandra,
        "KFLOW_KEYSPACE": settings.keyspace,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": str(settings.partitions),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await client.start()
    yield client
    await client.close()


def _own(settings: Settings, tag: str) -> Settings:
    """A prefix of this test's own (dropped with the session's topics: same prefix)."""
    return settings.replace(topic_prefix=f"{settings.topic_prefix}-{tag}{uuid.uuid4().hex[:6]}")


# --- Kafka ----------------------------------------------------------------------------------------------------


async def test_topics_are_created_with_explicit_retention_and_min_insync_replicas(
    fresh: Settings, admin: AIOKafkaAdminClient
) -> None:
    topics = Topics(fresh.topic_prefix)  # created by the fixture with the defaults: one broker, factor 1
    configs = {name.removeprefix(topics.prefix + "."): await topic_config(admin, name) for name in topics.all()}
    summary = {
        suffix: (c["cleanup.policy"], c["retention.ms"], c["min.insync.replicas"]) for suffix, c in configs.items()
    }
    month = str(DEFAULT_RETENTION_MS)
    assert summary == {
        "inbox": ("delete", month, "1"),
        "history": ("delete", "-1", "1"),
        "tasks": ("delete", month, "1"),
        "timers": ("delete", month, "1"),
        "completions": ("delete", month, "1"),
        "dlq": ("delete", month, "1"),
        "state": ("compact", "-1", "1"),
        "timer-index": ("compact", "-1", "1"),
        "schemas": ("compact", "-1", "1"),
    }
    # the values are the topic's own (config source 1: DYNAMIC_TOPIC_CONFIG), not inherited broker defaults
    response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.inbox)])
    entries = {entry[0]: entry for r in response for resource in r.resources for entry in resource[4]}
    assert {entries[key][3] for key in ("retention.ms", "min.insync.replicas", "cleanup.policy")} == {1}
    described = await admin.describe_topics([topics.inbox])
    assert {len(p["replicas"]) for p in described[0]["partitions"]} == {1}


async def test_the_cli_creates_with_the_retention_setting_and_check_is_clean(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    own = _own(settings, "ret")
    done = kflow(own, "topics", "create", "--json", KFLOW_RETENTION="7d", KFLOW_REPLICATION_FACTOR="1")
    assert done.returncode == 0, done.stderr
    assert all(row["created"] for row in json.loads(done.stdout))
    assert (await topic_config(admin, Topics(own.topic_prefix).tasks))["retention.ms"] == "604800000"
    checked = kflow(own, "topics", "check", KFLOW_RETENTION="7d")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [line.split()[1] for line in checked.stdout.splitlines()] == ["ok"] * len(TOPIC_SPECS)
    # against the default retention the five time-retained topics drift
    drifted = kflow(own, "topics", "check", "--json")
    assert drifted.returncode == 1
    rows = json.loads(drifted.stdout)
    assert {(r["topic"].rsplit(".", 1)[1], r["setting"], r["actual"]) for r in rows} == {
        (suffix, "retention.ms", "604800000") for suffix in ("inbox", "tasks", "timers", "completions", "dlq")
    }


async def test_create_refuses_over_a_topic_with_another_partition_count(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    own = _own(settings, "parts")
    topics = Topics(own.topic_prefix)
    await admin.create_topics([NewTopic(topics.inbox, num_partitions=3, replication_factor=1)])
    done = kflow(own, "topics", "create")  # KFLOW_PARTITIONS=2
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("kflow: error: existing topics differ from their declaration")
    assert f"{topics.inbox} has partitions=3, expected 2" in done.stderr
    assert [t for t in await admin.list_topics() if t.startswith(own.topic_prefix + ".")] == [topics.inbox]
    with_three = kflow(own, "topics", "create", "--json", KFLOW_PARTITIONS="3")  # the same count: fine
    assert with_three.returncode == 0, with_three.stderr
    assert {row["topic"]: row["created"] for row in json.loads(with_three.stdout)}[topics.inbox] is False
    assert [line.split()[1] for line in kflow(own, "topics", "create", KFLOW_PARTITIONS="3").stdout.splitlines()] == [
        "exists"
    ] * len(TOPIC_SPECS)


async def test_check_reports_a_changed_retention_and_a_missing_topic(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    own = _own(settings, "chk")
    topics = Topics(own.topic_prefix)
    await create_topics(own.bootstrap, topics, own.partitions)
    kept = {k: v for k, v in (await topic_config(admin, topics.timers)).items() if k in ("cleanup.policy",)}
    await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topics.timers, {**kept, "retention.ms": "3600000"})]
    )

    async def changed() -> bool:
        return (await topic_config(admin, topics.timers))["retention.ms"] == "3600000"

    await eventually(changed, what="the new retention to be visible")
    await admin.delete_topics([topics.dlq])

    async def gone() -> bool:
        return topics.dlq not in await admin.list_topics()

    await eventually(gone, what="the dlq topic to be deleted")
    done = kflow(own, "topics", "check")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert lines[topics.timers].startswith(f"retention.ms=3600000 (expected {DEFAULT_RETENTION_MS})")
    assert lines[topics.dlq] == "missing" and lines[topics.inbox] == "ok"
    unreachable = kflow(own, "topics", "check", KFLOW_BOOTSTRAP="127.0.0.1:1")
    assert unreachable.returncode == 4 and unreachable.stderr.startswith("kflow: error: Kafka at 127.0.0.1:1")


# --- Cassandra ------------------------------------------------------------------------------------------------


def _data_center(settings: Settings) -> str:
    with CassandraConnection(settings.cassandra_target()) as conn:
        return str(conn.session.execute("SELECT data_center FROM system.local").one().data_center)


def _replication_of(settings: Settings, keyspace: str) -> dict[str, str]:
    with CassandraConnection(settings.cassandra_target()) as conn:
        row = conn.session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
        ).one()
    return dict(row.replication)


def test_migrate_creates_the_keyspace_with_the_replication_setting(settings: Settings) -> None:
    dc = _data_center(settings)
    own = settings.replace(keyspace=f"{settings.keyspace}_nts{uuid.uuid4().hex[:6]}")
    done = kflow(own, "storage", "migrate", "--json", KFLOW_CASSANDRA_REPLICATION=f"NetworkTopologyStrategy:{dc}=1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"]
    assert _replication_of(own, own.keyspace) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
        dc: "1",
    }
    # --replication wins over the setting
    other = settings.replace(keyspace=f"{settings.keyspace}_cli{uuid.uuid4().hex[:6]}")
    done = kflow(
        other,
        "storage",
        "migrate",
        "--replication",
        '{"class": "SimpleStrategy", "replication_factor": 1}',
        KFLOW_CASSANDRA_REPLICATION=f"NetworkTopologyStrategy:{dc}=1",
    )
    assert done.returncode == 0, done.stderr
    assert _replication_of(other, other.keyspace)["class"].endswith("SimpleStrategy")
    bad = kflow(other, "storage", "migrate", KFLOW_CASSANDRA_REPLICATION="NetworkTopologyStrategy:dc1=zero")
    assert bad.returncode == 2 and "KFLOW_CASSANDRA_REPLICATION" in bad.stderr


async def test_a_session_with_local_dc_and_consistency_reads_and_writes(settings: Settings) -> None:
    dc = _data_center(settings)
    keyspace = f"{settings.keyspace}_dc{uuid.uuid4().hex[:6]}"
    host, port = settings.cassandra_host_port
    env = {
        "KFLOW_CASSANDRA": f"127.0.0.1:1,{host}:{port}",  # a dead contact point first: the next one answers
        "KFLOW_CASSANDRA_LOCAL_DC": dc,
        "KFLOW_CASSANDRA_CONSISTENCY": "read=LOCAL_ONE,write=LOCAL_QUORUM",
        "KFLOW_CASSANDRA_REPLICATION": f"NetworkTopologyStrategy:{dc}=1",
        "KFLOW_KEYSPACE": keyspace,
    }
    own = Settings.from_env({**os.environ, **env})
    target = own.cassandra_target()
    assert target.contact_points == [("127.0.0.1", 1), (host, port)] and target.local_dc == dc
    assert target.replication == parse_replication(f"NetworkTopologyStrategy:{dc}=1")
    run_id = f"dc-{uuid.uuid4().hex[:8]}"
    now = SystemClock().now_ms()
    events = history(run_id, "completed", now - 1000, now)
    with CassandraConnection(target) as conn:
        assert migrate(conn, keyspace)  # the keyspace comes from the target's replication
        await HistoryWriter(conn, keyspace).write(events)
        store = RunStore(conn, keyspace)
        row = store.get_run(run_id)
        assert row is not None and row.status == "completed"
        assert [event.seq for event in store.events(run_id)] == [event.seq for event in events]
    assert _replication_of(own, keyspace)["class"].endswith("NetworkTopologyStrategy")
    shown = kflow(own, "runs", "show", run_id, "--json", **env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "completed"
    with CassandraConnection(CassandraTarget(host, port)) as conn:
        conn.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
