"""The history materializer on the real Kafka and Cassandra: it follows the history topic, and loses nothing
through a Cassandra outage.

Histories come from real workflows run by ``engine.InMemoryDriver`` (materializer_support.py); each test has
topics and a keyspace of its own (``fresh``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
import warnings
from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from engine.runtime import HistoryEvent
from engine.testing import FakeClock, InMemoryDriver
from materializer_support import (
    DAY_MS,
    RECORDS,
    REGISTRY,
    cassandra_events,
    chunks,
    connect,
    finish,
    interleaved,
    newest_first,
    now_ms,
    order,
    read_history_topic,
    record_runs,
)
from storage import RunStore
from streams import DevStack, Settings, Topics
from streams.kafka import consumer, producer
from streams.processors import HistoryMaterializer
from support import eventually, holds_for

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

OUTAGE_SECONDS = 60
"""How long Cassandra stays down in the outage test while history keeps flowing."""


async def _produce(
    settings: Settings,
    events: Sequence[HistoryEvent],
    per_transaction: int = 10,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """History records as the orchestrator writes them: keyed by run id, in transactions."""
    sender = producer(settings.bootstrap, transactional_id=f"{settings.topic_prefix}.test-{uuid.uuid4().hex[:6]}")
    await sender.start()
    try:
        history = Topics(settings.topic_prefix).history
        for batch in chunks(events, per_transaction):
            async with sender.transaction():
                for event in batch:
                    await sender.send(history, RECORDS.encode(event), key=event.run_id.encode())
        for key, value in extra:
            async with sender.transaction():
                await sender.send(history, value, key=key)
    finally:
        await sender.stop()


async def test_materializer_follows_the_history_topic(fresh: Settings) -> None:
    histories, ids = await record_runs(now_ms() - 2 * DAY_MS - 60_000)
    events = interleaved(histories)
    materializer = HistoryMaterializer(fresh)
    await materializer.start()
    try:
        await _produce(fresh, events, extra=[(b"junk", b"\x00not a record")])

        async def caught_up() -> bool:
            lag = await materializer.lag()
            return len(lag) == fresh.partitions and sum(lag.values()) == 0 and materializer.stats.undecodable == 1

        await eventually(caught_up, timeout=60, interval=0.2, what="the materializer to catch up")
        assert materializer.stats.events_written == len(events)
        assert materializer.stats.last_event_timestamp == max(e.timestamp for e in events)
        with connect(fresh) as conn:
            assert cassandra_events(conn, fresh.keyspace) == await read_history_topic(fresh)
            store = RunStore(conn, fresh.keyspace)
            assert [r.run_id for r in store.list_runs().runs] == newest_first(histories, lambda h: True)
            assert store.get_run(ids["doomed"]).status == "failed"  # type: ignore[union-attr]

        async def all_committed() -> bool:  # as another process (kflow runs lag) sees it
            return await _committed_offsets(fresh) == await _end_offsets(fresh)

        await eventually(
            all_committed, interval=0.2, what="the committed offsets to reach the end (transaction markers too)"
        )
    finally:
        await materializer.stop()


async def _committed_offsets(settings: Settings) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}.materializer")
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


async def _end_offsets(settings: Settings) -> dict[int, int]:
    reader = consumer(settings.bootstrap)
    await reader.start()
    try:
        tps = [TopicPartition(Topics(settings.topic_prefix).history, p) for p in range(settings.partitions)]
        return {tp.partition: offset for tp, offset in (await reader.end_offsets(tps)).items()}
    finally:
        await reader.stop()


async def _produce_steadily(settings: Settings, stop: asyncio.Event, produced: list[HistoryEvent]) -> None:
    """One finished `order` run every ~100 ms (one transaction each) until ``stop`` is set."""
    clock = FakeClock(now_ms())
    driver = InMemoryDriver(REGISTRY, clock)
    sender = producer(settings.bootstrap, transactional_id=f"{settings.topic_prefix}.steady")
    await sender.start()
    history = Topics(settings.topic_prefix).history
    try:
        amount = 0
        while not stop.is_set():
            amount += 1
            run_id = await finish(driver, clock, driver.start(order, amount))
            events = driver.history(run_id)
            async with sender.transaction():
                for event in events:
                    await sender.send(history, RECORDS.encode(event), key=run_id.encode())
            produced.extend(events)
            await asyncio.sleep(0.1)
    finally:
        await sender.stop()


@pytest.mark.timeout(900)
@pytest.mark.skipif(
    bool(os.environ.get("KFLOW_BOOTSTRAP") or os.environ.get("KFLOW_CASSANDRA")),
    reason="stops and restarts the local dev Cassandra; not with external servers",
)
async def test_cassandra_outage_loses_nothing(fresh: Settings) -> None:
    stack = DevStack(fresh.home)
    materializer = HistoryMaterializer(fresh)
    produced: list[HistoryEvent] = []
    stop_producing = asyncio.Event()
    await materializer.start()
    producing = asyncio.create_task(_produce_steadily(fresh, stop_producing, produced))
    try:
        await eventually(lambda: materializer.stats.events_written > 20, timeout=60, interval=0.2, what="first writes")
        log.warning("outage test: %s", await asyncio.to_thread(stack.cassandra.stop, 45))
        retries_at_stop = materializer.stats.retries
        # the outage itself: history keeps flowing meanwhile
        await holds_for(lambda: not producing.done(), OUTAGE_SECONDS, interval=1, what=lambda: repr(producing))
        assert materializer.stats.retries > retries_at_stop, "the materializer never noticed the outage"
        assert sum((await materializer.lag()).values()) > 0
        written_during_outage = materializer.stats.events_written
    finally:
        with warnings.catch_warnings():
            # DevStack.up starts Cassandra detached (streams/dev/_jvm.py, Daemon.start): the Popen object is
            # dropped while the server runs on, on purpose, and Popen.__del__ says so.
            warnings.filterwarnings("ignore", r"subprocess \d+ is still running", ResourceWarning)
            await asyncio.to_thread(stack.up, log=lambda line: log.warning("outage test: %s", line))
    back = time.monotonic()
    await eventually(
        lambda: materializer.stats.events_written > written_during_outage,
        timeout=60,
        interval=0.2,
        what="writes to resume",
    )
    log.warning("outage test: writes resumed %.1fs after Cassandra answered again", time.monotonic() - back)
    stop_producing.set()
    await producing
    try:

        async def caught_up() -> bool:
            lag = await materializer.lag()
            return (
                len(lag) == fresh.partitions
                and sum(lag.values()) == 0
                and materializer.stats.events_written >= len(produced)
            )

        await eventually(caught_up, timeout=240, interval=0.2, what="the materializer to catch up after the outage")
        with connect(fresh) as conn:
            in_cassandra, in_kafka = cassandra_events(conn, fresh.keyspace), await read_history_topic(fresh)
        assert len(in_kafka) == len(produced)
        assert in_cassandra == in_kafka
        log.warning(
            "outage test: %d events, %d retries, %d connections",
            len(produced),
            materializer.stats.retries,
            materializer.stats.connections,
        )
    finally:
        await materializer.stop()
