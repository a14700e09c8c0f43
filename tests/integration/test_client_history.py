"""``Client.get_events`` / ``get_run`` on real Kafka + Cassandra: the events the materializer wrote, plus only
the part of the history topic it has not written yet — equal to a scan of the whole partition."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from engine import Registry, continue_as_new, step, workflow
from engine.runtime import HistoryEvent
from engine.testing import FakeClock, InMemoryDriver
from schemas import RecordCodec
from storage import CassandraConnection, CassandraTarget
from streams import Settings, Topics, partition_for
from streams.client import Client
from streams.kafka import consumer, producer
from streams.processors import HistoryMaterializer, Orchestrator
from support import eventually

RECORDS = RecordCodec()


@step
async def add(a: int, b: int) -> int:
    return a + b


@workflow
async def tally(n: int) -> int:
    total = 0
    for i in range(n):
        total = await add(total, i)
    return total


@workflow
async def countdown(n: int) -> str:
    if n > 0:
        continue_as_new(n - 1)
    return "liftoff"


async def recorded(runs: int, steps: int) -> dict[str, tuple[HistoryEvent, ...]]:
    """Finished histories of ``runs`` runs of ``steps`` steps each (recorded by the in-memory driver)."""
    driver = InMemoryDriver(Registry([tally, add]), FakeClock(time.time_ns() // 1_000_000))
    ids = [driver.start(tally, steps) for _ in range(runs)]
    await driver.run_until_idle()
    return {run_id: driver.history(run_id) for run_id in ids}


async def produce(settings: Settings, events: Sequence[HistoryEvent]) -> None:
    """History records as the orchestrator writes them: keyed by run id, in transactions; returns once
    read-committed readers see them all (the commit markers are written after the commit returns)."""
    sender = producer(settings.bootstrap, transactional_id=f"{settings.topic_prefix}.test-{uuid.uuid4().hex[:6]}")
    await sender.start()
    try:
        for start in range(0, len(events), 50):
            async with sender.transaction():
                for event in events[start : start + 50]:
                    await sender.send(
                        Topics(settings.topic_prefix).history, RECORDS.encode(event), key=event.run_id.encode()
                    )
    finally:
        await sender.stop()
    history = Topics(settings.topic_prefix).history
    tps = [TopicPartition(history, p) for p in range(settings.partitions)]
    committed = consumer(settings.bootstrap)
    everything = consumer(settings.bootstrap, isolation_level="read_uncommitted")
    await committed.start()
    await everything.start()
    try:

        async def markers_landed() -> bool:
            return await committed.end_offsets(tps) == await everything.end_offsets(tps)

        await eventually(markers_landed, what="the last transaction's markers to land")
    finally:
        await committed.stop()
        await everything.stop()


async def materialized_to_the_end(settings: Settings, timeout: float = 60) -> None:
    """Wait until the materializer group's committed offsets reach the end of every history partition."""
    history = Topics(settings.topic_prefix).history
    tps = [TopicPartition(history, p) for p in range(settings.partitions)]
    admin, probe = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap), consumer(settings.bootstrap)
    await admin.start()
    await probe.start()
    try:

        async def at_the_end() -> bool:
            committed = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}.materializer")
            ends = await probe.end_offsets(tps)
            assert all(tp in committed and committed[tp].offset == ends[tp] for tp in tps), f"{committed} vs {ends}"
            return True

        await eventually(at_the_end, timeout=timeout, interval=0.2, what="the materializer to reach the end")
    finally:
        await probe.stop()
        await admin.close()


async def test_get_events_reads_cassandra_and_only_the_tail_the_materializer_has_not_written(fresh: Settings) -> None:
    histories = await recorded(runs=40, steps=4)
    target, *others = histories
    whole = histories[target]
    head, tail = whole[:5], whole[5:]
    await produce(fresh, [*head, *(e for run in others for e in histories[run])])
    materializer = HistoryMaterializer(fresh)
    await materializer.start()
    try:
        await materialized_to_the_end(fresh)
    finally:
        await materializer.stop()
    partition = partition_for(target.encode(), fresh.partitions)
    late = await recorded(runs=10, steps=4)  # written while no materializer runs
    while not any(partition_for(run.encode(), fresh.partitions) == partition for run in late):
        late = await recorded(runs=10, steps=4)  # run ids are random: make sure one shares the target's partition
    await produce(fresh, [*tail, *(e for run in late.values() for e in run)])
    on_partition = [run for run in [*histories, *late] if partition_for(run.encode(), fresh.partitions) == partition]
    behind = len(tail) + sum(len(late[run]) for run in late if run in on_partition)

    async with Client(settings=fresh) as client:
        assert await client.get_events(target) == list(whole)
        read = client.history.last_read
        assert read is not None and read.source == "cassandra"
        assert read.scanned == behind  # the records after the materializer's offset, not the partition
        info = await client.get_run(target)
        assert info is not None and info.status == "completed" and info.result == sum(range(4))
        for run in [*others[:3], *list(late)[:3]]:  # all stored, or none stored (read from the topic)
            assert await client.get_events(run) == list({**histories, **late}[run])
        newcomer = next(run for run in late if run in on_partition)  # wholly after the offset: the tail has it
        assert await client.get_events(newcomer) == list(late[newcomer])
        read = client.history.last_read
        assert read is not None and read.source == "cassandra" and read.scanned == behind
        assert await client.get_events(uuid.uuid4().hex) == []

        # A hole in Cassandra below the offset (a record the materializer could not decode, a keyspace that
        # is not the materializer's): seen as a gap in the seqs, so the partition is read whole instead.
        holed = next(run for run in others if run in on_partition)
        host, port = fresh.cassandra_host_port
        with CassandraConnection(CassandraTarget(host, port)) as conn:
            conn.session.execute(f"DELETE FROM {fresh.keyspace}.events WHERE run_id = %s AND seq = 3", (holed,))
        assert await client.get_events(holed) == list(histories[holed])
        read = client.history.last_read
        assert read is not None and read.source == "kafka"

    async with Client(settings=fresh, history="kafka") as client:  # the whole partition: the same events
        assert await client.get_events(target) == list(whole)
        read = client.history.last_read
        assert read is not None and read.source == "kafka"
        assert read.scanned == sum(len({**histories, **late}[run]) for run in on_partition) > behind


async def test_with_cassandra_unreachable_the_history_topic_alone_gives_the_same_answer(fresh: Settings) -> None:
    histories = await recorded(runs=3, steps=2)
    await produce(fresh, [e for run in histories.values() for e in run])
    nowhere = fresh.replace(cassandra="127.0.0.1:9")  # nothing listens there
    async with Client(settings=nowhere) as client:
        for run_id, history in histories.items():
            assert await client.get_events(run_id) == list(history)
            read = client.history.last_read
            assert read is not None and read.source == "kafka"


async def test_result_of_a_chain_finished_before_the_client_started_scans_twice_not_once_per_link(
    fresh: Settings,
) -> None:
    links = 30
    orchestrator, materializer = Orchestrator(fresh, Registry([countdown])), HistoryMaterializer(fresh)
    await orchestrator.start()
    await materializer.start()
    try:
        async with Client(settings=fresh) as starter:
            first = await starter.start("countdown", links)
            assert await starter.result(first, timeout=60) == "liftoff"
        await materialized_to_the_end(fresh)
    finally:
        await materializer.stop()
        await orchestrator.stop()
    # Fresh clients: their completions tail starts after the whole chain finished.
    async with Client(settings=fresh) as client:
        assert await client.result(first, timeout=60) == "liftoff"
        assert client._reader.scans == 2  # the first link, then the last one Cassandra's links lead to
    async with Client(settings=fresh, history="kafka") as client:  # no Cassandra: a scan per link
        assert await client.result(first, timeout=60) == "liftoff"
        assert client._reader.scans == links + 1
