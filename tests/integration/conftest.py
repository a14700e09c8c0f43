"""Real Kafka and Cassandra for integration tests.

The servers are the project's own (``kflow dev up``): started once per machine and reused when already
up, unless ``KFLOW_BOOTSTRAP`` / ``KFLOW_CASSANDRA`` point at servers someone else runs. Each test session
gets its own topic prefix and keyspace, dropped at the end, so sessions never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from compact_support import Runs, make_runs, materialize
from engine.runtime import SystemClock
from storage import CassandraConnection, migrate
from streams import DevStack, Settings, Topics, create_topics, kafka


@pytest.fixture(scope="session")
def servers() -> Settings:
    """Base settings with both servers up and answering (started by the project's scripts if needed)."""
    base = Settings.from_env()
    if not (os.environ.get("KFLOW_BOOTSTRAP") or os.environ.get("KFLOW_CASSANDRA")):
        DevStack(base.home).up(log=lambda line: None)
    return base


@pytest.fixture(scope="session")
def settings(servers: Settings) -> Iterator[Settings]:
    """Settings isolated for this test session: unique topic prefix and keyspace, 2 partitions.

    Tests that need topics or a keyspace of their own derive them from these (``<prefix>-<suffix>``,
    ``<keyspace>_<suffix>``); all of them are dropped at the end of the session.
    """
    tag = uuid.uuid4().hex[:10]
    isolated = servers.replace(topic_prefix=f"kflowtest-{tag}", keyspace=f"kflowtest_{tag}", partitions=2)
    asyncio.run(create_topics(isolated.kafka_target(), Topics(isolated.topic_prefix), isolated.partitions))
    yield isolated
    asyncio.run(_delete_topics(isolated))
    with CassandraConnection(isolated.cassandra_target()) as conn:
        # the session keyspace, every keyspace a test derived from it (``<keyspace>_<suffix>``), and the default
        # keyspaces of the session's prefixes (``kflow_kflowtest_<tag>…``: processes given a prefix and no keyspace)
        names = [row.keyspace_name for row in conn.session.execute("SELECT keyspace_name FROM system_schema.keyspaces")]
        for name in names:
            if name == isolated.keyspace or name.startswith((isolated.keyspace + "_", "kflow_" + isolated.keyspace)):
                conn.session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture
async def fresh(settings: Settings) -> AsyncIterator[Settings]:
    """Settings with topics and a keyspace of their own (``<prefix>-f<tag>``), removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-f{tag}", keyspace=f"{settings.keyspace}_f{tag}")
    await create_topics(own.kafka_target(), Topics(own.topic_prefix), own.partitions)
    yield own
    await _delete_topics(own)
    with CassandraConnection(own.cassandra_target()) as conn:  # a new session: Cassandra may have restarted
        conn.session.execute(f"DROP KEYSPACE IF EXISTS {own.keyspace}")


async def _delete_topics(settings: Settings) -> None:
    admin = kafka.admin(settings.kafka_target())
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


# --- compaction (test_compact_*.py; helpers in compact_support.py) -------------------------------------------


@pytest.fixture(scope="session")
def base(settings: Settings) -> Settings:
    """The session's servers with the compaction tests' own topics (dropped with the session's: same prefix)."""
    prefix = f"{settings.topic_prefix}-compact"
    asyncio.run(create_topics(settings.kafka_target(), Topics(prefix), settings.partitions))
    return settings.replace(topic_prefix=prefix)


@pytest.fixture()
def conn(settings: Settings) -> Iterator[CassandraConnection]:
    """A connection to the session's Cassandra, closed after the test."""
    with CassandraConnection(settings.cassandra_target()) as connection:
        yield connection


@pytest.fixture()
def ks(base: Settings, conn: CassandraConnection) -> Settings:
    """``base`` on a migrated keyspace of this test's own (dropped with the session's: same prefix)."""
    isolated = base.replace(keyspace=f"{base.keyspace}_c{uuid.uuid4().hex[:8]}")
    migrate(conn, isolated.keyspace)
    return isolated


@pytest.fixture()
def runs(ks: Settings, conn: CassandraConnection) -> Runs:
    """The standard mix of runs of the compaction tests, materialized into the test's keyspace."""
    made = make_runs(ks.keyspace[-8:], SystemClock().now_ms())
    materialize(conn, ks, [event for events in made.histories.values() for event in events])
    return made
