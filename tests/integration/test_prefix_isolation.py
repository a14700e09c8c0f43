"""Two topic prefixes on one Kafka and one Cassandra cluster: the same workflow started with the same idempotency key
under each is two runs, each prefix's client and ``kflow runs list`` see only its own, and ``kflow compact
--purge-history`` under one purges only its own, even pointed at the other's keyspace (its orchestrator confirms only
runs it knows)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from engine import Registry
from storage import CassandraConnection, CassandraTarget, RunStore, StorageError
from streams import HistoryMaterializer, Orchestrator, Settings, StepWorker, Topics, create_topics, default_keyspace
from streams.client import Client
from support import eventually

pytestmark = pytest.mark.integration

REGISTRY = Registry.from_module("auth_workflows")


@pytest.fixture
async def prefixes(settings: Settings) -> AsyncIterator[tuple[Settings, Settings]]:
    """Two prefixes, each with its default keyspace and its orchestrator, worker and materializer."""
    owns = tuple(
        settings.replace(topic_prefix=prefix, keyspace=default_keyspace(prefix))
        for prefix in (f"{settings.topic_prefix}-iso-a", f"{settings.topic_prefix}-iso-b")
    )
    services: list[Orchestrator | StepWorker | HistoryMaterializer] = []
    for own in owns:
        await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
        services += [Orchestrator(own, REGISTRY), StepWorker(own, REGISTRY), HistoryMaterializer(own)]
    try:
        for service in services:
            await service.start()
        yield owns[0], owns[1]
    finally:
        for service in reversed(services):
            await service.stop()
        with _connection(settings) as conn:
            for own in owns:
                conn.session.execute(f"DROP KEYSPACE IF EXISTS {own.keyspace}")


def _connection(settings: Settings) -> CassandraConnection:
    host, port = settings.cassandra_host_port
    return CassandraConnection(CassandraTarget(host, port))


@pytest.fixture
def conn(settings: Settings) -> Iterator[CassandraConnection]:
    with _connection(settings) as connection:
        yield connection


def _kflow(own: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``kflow ARGS`` configured by the prefix alone: the keyspace is the prefix's default unless ``env`` names one."""
    full = {name: value for name, value in os.environ.items() if name != "KFLOW_KEYSPACE"}
    full |= {
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(own.partitions),
        "KFLOW_BOOTSTRAP": own.bootstrap,
        "KFLOW_CASSANDRA": own.cassandra,
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=full, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


async def test_two_prefixes_cannot_see_or_purge_each_others_runs(
    prefixes: tuple[Settings, Settings], conn: CassandraConnection
) -> None:
    a, b = prefixes
    assert a.keyspace != b.keyspace
    runs: list[str] = []
    for own in prefixes:
        async with Client(settings=own, registry=REGISTRY) as client:
            run_id = await client.start("keyed_order", "o-1", idempotency_key="o-1")
            assert await client.result(run_id, timeout=60) == "order o-1 done"
            runs.append(run_id)
    run_a, run_b = runs
    assert run_a != run_b  # one key, two prefixes: two runs
    keyspaces = {run_a: a.keyspace, run_b: b.keyspace}

    def stored(run_id: str) -> RunStore | None:
        try:
            store = RunStore(conn, keyspaces[run_id])
            row = store.get_run(run_id)
        except StorageError:  # the materializer has not migrated the keyspace yet
            return None
        return store if row is not None and row.status == "completed" else None

    stores = {
        run_id: await eventually(functools.partial(stored, run_id), what=f"run {run_id} in Cassandra")
        for run_id in runs
    }
    history_b = stores[run_b].events(run_b)
    assert history_b

    async with Client(settings=a, registry=REGISTRY) as client:
        assert await client.get_run(run_b) is None
        info = await client.get_run(run_a)
        assert info is not None and info.status == "completed"
        listed, _ = await client.list_runs()
        assert {run.run_id for run in listed} == {run_a}
    listing = (await asyncio.to_thread(_kflow, a, "runs", "list", "--json")).stdout
    assert run_a in listing and run_b not in listing

    report = json.loads(
        (await asyncio.to_thread(_kflow, a, "compact", "--older-than", "0", "--purge-history", "--json")).stdout
    )
    assert (report["runs"], report["histories_purged"], report["unconfirmed"]) == (1, 1, 0)
    assert stores[run_a].events(run_a) == []
    assert stores[run_b].events(run_b) == history_b

    # Pointed at the other prefix's keyspace (as two prefixes sharing one would be), it finds that prefix's run but
    # its own orchestrator does not know it: not confirmed, so neither marked nor purged.
    shared = json.loads(
        (
            await asyncio.to_thread(
                _kflow, a, "compact", "--older-than", "0", "--purge-history", "--json", KFLOW_KEYSPACE=b.keyspace
            )
        ).stdout
    )
    assert (shared["runs"], shared["histories_purged"], shared["unconfirmed"]) == (0, 0, 1)
    [left] = shared["unconfirmed_runs"]
    assert left["run_id"] == run_b and "is not a finished run of this partition" in left["reason"]
    row = stores[run_b].get_run(run_b)
    assert row is not None and row.compacted_at is None and not row.history_purged
    assert stores[run_b].events(run_b) == history_b
