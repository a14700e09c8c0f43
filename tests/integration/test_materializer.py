"""History materialization on the real Kafka and Cassandra: tables, listings, idempotency, the outage test.

Histories come from real workflows run by ``engine.InMemoryDriver``; each test works in its own keyspace
(and, for the materializer, its own topics), so the exact-equality checks see only their own data.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from engine import Registry, continue_as_new, sleep, step, workflow
from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent, WorkflowContinuedAsNew, WorkflowStarted
from engine.testing import FakeClock, InMemoryDriver
from schemas import RecordCodec, SchemaError
from storage import CassandraConnection, CassandraTarget, HistoryWriter, RunStore, migrate
from storage._migrations import load_migrations
from streams import DevStack, Settings, Topics
from streams.kafka import consumer, producer
from streams.processors import HistoryMaterializer

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

OUTAGE_SECONDS = 60
"""How long Cassandra stays down in the outage test while history keeps flowing."""

DAY_MS = 86_400_000
RECORDS = RecordCodec()
TABLES = ("events", "runs", "runs_by_status", "runs_by_workflow")
Histories = dict[str, tuple[HistoryEvent, ...]]
Written = tuple[str, Histories, dict[str, str]]  # keyspace, histories by run id, run ids by role


@step
async def charge(amount: int) -> int:
    return amount * 2


@step(max_retries=0)
async def explode(reason: str) -> None:
    raise ValueError(reason)


@workflow
async def order(amount: int) -> dict[str, int]:
    charged = await charge(amount)
    await sleep("1s")
    return {"charged": charged, "fee": await charge(1)}


@workflow
async def doomed(reason: str) -> None:
    await explode(reason)


@workflow
async def patient() -> None:
    await sleep("30d")


@workflow
async def countdown(n: int) -> int:
    if n > 0:
        continue_as_new(n - 1)
    return n


REGISTRY = Registry([order, doomed, patient, countdown, charge, explode])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _finish(driver: InMemoryDriver, clock: FakeClock, run_id: str) -> str:
    await driver.run_until_idle()
    clock.advance("1s")
    await driver.run_until_idle()
    return run_id


async def record_runs(start_ms: int) -> tuple[Histories, dict[str, str]]:
    """Runs of every outcome over three UTC days, ending around ``start_ms + 2 days``."""
    clock = FakeClock(start_ms)
    driver = InMemoryDriver(REGISTRY, clock)
    ids = {"order_old": await _finish(driver, clock, driver.start(order, 5))}
    clock.advance("1d")
    ids["doomed"] = await _finish(driver, clock, driver.start(doomed, "no stock"))
    ids["chain"] = await _finish(driver, clock, driver.start(countdown, 2))
    ids["cancelled"] = driver.start(patient)
    await driver.run_until_idle()
    clock.advance("1m")
    driver.cancel(ids["cancelled"], "operator said so")
    await driver.run_until_idle()
    clock.advance("1d")
    ids["order_new"] = await _finish(driver, clock, driver.start(order, 7))
    ids["order_running"] = driver.start(order, 9)  # waits on its 1 s sleep: the clock never moves again
    ids["patient_running"] = driver.start(patient)
    await driver.run_until_idle()
    histories: Histories = {}
    for run_id in ids.values():
        while run_id not in histories:
            histories[run_id] = driver.history(run_id)
            ending = histories[run_id][-1]
            if isinstance(ending, WorkflowContinuedAsNew):
                run_id = ending.next_run_id
    return histories, ids


def interleaved(histories: Histories) -> list[HistoryEvent]:
    """All events in emission order across runs (as the orchestrator would append them)."""
    events = [event for history in histories.values() for event in history]
    return sorted(events, key=lambda e: (e.timestamp, e.run_id, e.seq))


def chunks(events: Sequence[HistoryEvent], size: int, step_by: int | None = None) -> Iterator[list[HistoryEvent]]:
    for start in range(0, len(events), step_by or size):
        yield list(events[start : start + size])


def newest_first(histories: Histories, keep: Callable[[tuple[HistoryEvent, ...]], bool]) -> list[str]:
    keys = [(h[0].timestamp, run_id) for run_id, h in histories.items() if keep(h)]
    return [run_id for _, run_id in sorted(keys, reverse=True)]


def status_of(history: tuple[HistoryEvent, ...]) -> str:
    names = {
        "WorkflowCompleted": "completed",
        "WorkflowFailed": "failed",
        "WorkflowCancelled": "cancelled",
        "WorkflowContinuedAsNew": "continued_as_new",
    }
    return names.get(type(history[-1]).__name__, "running")


def snapshot(conn: CassandraConnection, keyspace: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every materialized table, sorted."""
    return {
        table: sorted((tuple(row) for row in conn.session.execute(f"SELECT * FROM {keyspace}.{table}")), key=repr)
        for table in TABLES
    }


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float) -> None:
    """Poll ``check`` (sync or async) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        await asyncio.sleep(0.2)


def _connect(settings: Settings) -> CassandraConnection:
    host, port = settings.cassandra_host_port
    return CassandraConnection(CassandraTarget(host, port))


@pytest.fixture(scope="module")
def conn(settings: Settings) -> Iterator[CassandraConnection]:
    with _connect(settings) as connection:
        yield connection


@pytest.fixture(scope="module")
async def written(settings: Settings, conn: CassandraConnection) -> AsyncIterator[Written]:
    """A keyspace holding the recorded runs, written in batches of 7 interleaved events."""
    keyspace = f"{settings.keyspace}_w"
    assert migrate(conn, keyspace) == [m.version for m in load_migrations()]
    assert migrate(conn, keyspace) == []  # idempotent
    histories, ids = await record_runs(_now_ms() - 2 * DAY_MS - 60_000)
    writer = HistoryWriter(conn, keyspace)
    for batch in chunks(interleaved(histories), 7):
        await writer.write(batch)
    yield keyspace, histories, ids
    with _connect(settings) as after:  # a new session: the outage test may have restarted Cassandra since
        after.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


async def test_events_runs_and_query_tables(written: Written, conn: CassandraConnection) -> None:
    keyspace, histories, ids = written
    store = RunStore(conn, keyspace)
    for run_id, history in histories.items():
        assert store.events(run_id) == list(history)
        row = store.get_run(run_id)
        assert row is not None and isinstance(history[0], WorkflowStarted)
        assert (row.workflow_name, row.status) == (history[0].workflow_name, status_of(history))
        assert (row.started_at, row.last_seq, row.updated_at) == (
            history[0].timestamp,
            len(history),
            history[-1].timestamp,
        )
        assert row.finished_at == (None if row.status == "running" else history[-1].timestamp)
    for run_id, history in histories.items():  # the module invariant of storage._history, as stored
        written = conn.session.execute(
            f"SELECT writetime(status) AS ts FROM {keyspace}.runs WHERE run_id = %s", (run_id,)
        ).one()
        assert written.ts == (1 if status_of(history) == "running" else history[-1].seq)
    old = store.get_run(ids["order_old"])
    assert old is not None and old.args == '{"args":[5],"kwargs":{}}' and old.result == '{"charged":10,"fee":2}'
    failed = store.get_run(ids["doomed"])
    assert failed is not None and (failed.error_type, failed.error_message) == ("builtins.ValueError", "no stock")
    cancelled = store.get_run(ids["cancelled"])
    assert cancelled is not None and cancelled.error_message == "operator said so"
    chain = store.get_run(ids["chain"])
    assert chain is not None and chain.status == "continued_as_new" and chain.next_run_id is not None
    successor = store.get_run(chain.next_run_id)
    assert successor is not None and successor.continued_from == ids["chain"]
    assert store.get_run("no-such-run") is None and store.events("no-such-run") == []
    by_status = conn.session.execute(f"SELECT status, run_id FROM {keyspace}.runs_by_status")
    assert sorted((r.status, r.run_id) for r in by_status) == sorted((status_of(h), k) for k, h in histories.items())
    by_workflow = conn.session.execute(f"SELECT workflow_name, status, run_id FROM {keyspace}.runs_by_workflow")
    assert sorted(tuple(r) for r in by_workflow) == sorted(
        (h[0].workflow_name, status_of(h), k)
        for k, h in histories.items()  # type: ignore[union-attr]
    )


async def test_listings_are_newest_first_and_paginate(written: Written, conn: CassandraConnection) -> None:
    keyspace, histories, _ = written
    store = RunStore(conn, keyspace)

    def listed(**filters: object) -> list[str]:
        return [row.run_id for row in store.list_runs(**filters).runs]  # type: ignore[arg-type]

    assert listed() == newest_first(histories, lambda h: True)
    for status in ("running", "completed", "failed", "cancelled", "continued_as_new"):
        assert listed(status=status) == newest_first(histories, lambda h: status_of(h) == status), status
    orders = newest_first(histories, lambda h: h[0].workflow_name == "order")  # type: ignore[union-attr]
    assert len(orders) == 3 and listed(workflow="order") == orders
    assert listed(workflow="order", status="running") == orders[:1]
    assert listed(workflow="nope") == [] and listed(status="failed", workflow="order") == []
    for filters in (
        {},
        {"workflow": "countdown"},
        {"status": "completed"},
        {"workflow": "order", "status": "completed"},
    ):
        everything = listed(**filters)
        pages, token = [], None
        while True:
            page = store.list_runs(limit=2, page=token, **filters)  # type: ignore[arg-type]
            pages.append([row.run_id for row in page.runs])
            token = page.next_page
            if token is None:
                break
        assert [run_id for page_ids in pages for run_id in page_ids] == everything, filters
        assert all(len(page_ids) == 2 for page_ids in pages[:-1])
    one_day = RunStore(conn, keyspace, days=1)  # yesterday and today only: the oldest order is out of reach
    assert [r.run_id for r in one_day.list_runs(workflow="order").runs] == orders[:2]
    with pytest.raises(ValueError):
        store.list_runs(page="garbage")
    with pytest.raises(ValueError):
        store.list_runs(status="completed", page=store.list_runs(limit=1).next_page)


async def test_writing_again_in_any_batches_leaves_identical_rows(written: Written, conn: CassandraConnection) -> None:
    keyspace, histories, _ = written
    before = snapshot(conn, keyspace)
    events = interleaved(histories)
    assert len(before["events"]) == len(events)
    writer = HistoryWriter(conn, keyspace)
    await writer.write(events)  # the same events twice
    assert snapshot(conn, keyspace) == before
    for batch in chunks(events, 9, step_by=4):  # overlapping redeliveries
        await writer.write(batch)
    assert snapshot(conn, keyspace) == before
    stale = [event for history in histories.values() for event in history[:2]]
    await HistoryWriter(conn, keyspace, cache_size=0).write(stale)  # an old prefix after the ends: no effect
    shuffled = random.Random(7).sample(events, len(events))
    for batch in chunks(shuffled, 5):  # any order, a cold cache (terminal keys read from the runs rows)
        await HistoryWriter(conn, keyspace).write(batch)
    assert snapshot(conn, keyspace) == before


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


async def read_history_topic(settings: Settings) -> set[tuple[str, int, bytes]]:
    """``(run_id, seq, bytes)`` of every decodable record on the history topic."""
    reader = consumer(settings.bootstrap)
    await reader.start()
    found: set[tuple[str, int, bytes]] = set()
    try:
        tps = [TopicPartition(Topics(settings.topic_prefix).history, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        while any([await reader.position(tp) < ends[tp] for tp in tps]):
            for messages in (await reader.getmany(timeout_ms=1000)).values():
                for message in messages:
                    try:
                        event = RECORDS.decode(message.value)
                    except SchemaError:
                        continue  # the junk record of the end-to-end test
                    assert isinstance(event, HISTORY_EVENT_TYPES)
                    found.add((event.run_id, event.seq, message.value))  # type: ignore[attr-defined]
    finally:
        await reader.stop()
    return found


def cassandra_events(conn: CassandraConnection, keyspace: str) -> set[tuple[str, int, bytes]]:
    rows = list(conn.session.execute(f"SELECT run_id, seq, data FROM {keyspace}.events"))
    found = {(row.run_id, row.seq, bytes(row.data)) for row in rows}
    assert len(found) == len(rows)
    return found


async def test_materializer_follows_the_history_topic(fresh: Settings) -> None:
    histories, ids = await record_runs(_now_ms() - 2 * DAY_MS - 60_000)
    events = interleaved(histories)
    materializer = HistoryMaterializer(fresh)
    await materializer.start()
    try:
        await _produce(fresh, events, extra=[(b"junk", b"\x00not a record")])

        async def caught_up() -> bool:
            lag = await materializer.lag()
            return len(lag) == fresh.partitions and sum(lag.values()) == 0 and materializer.stats.undecodable == 1

        await eventually(caught_up, "the materializer to catch up", timeout=60)
        assert materializer.stats.events_written == len(events)
        assert materializer.stats.last_event_timestamp == max(e.timestamp for e in events)
        with _connect(fresh) as conn:
            assert cassandra_events(conn, fresh.keyspace) == await read_history_topic(fresh)
            store = RunStore(conn, fresh.keyspace)
            assert [r.run_id for r in store.list_runs().runs] == newest_first(histories, lambda h: True)
            assert store.get_run(ids["doomed"]).status == "failed"  # type: ignore[union-attr]

        async def all_committed() -> bool:  # as another process (kflow runs lag) sees it
            return await _committed_offsets(fresh) == await _end_offsets(fresh)

        await eventually(all_committed, "the committed offsets to reach the end (transaction markers too)", 30)
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
    clock = FakeClock(_now_ms())
    driver = InMemoryDriver(REGISTRY, clock)
    sender = producer(settings.bootstrap, transactional_id=f"{settings.topic_prefix}.steady")
    await sender.start()
    history = Topics(settings.topic_prefix).history
    try:
        amount = 0
        while not stop.is_set():
            amount += 1
            run_id = await _finish(driver, clock, driver.start(order, amount))
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
        await eventually(lambda: materializer.stats.events_written > 20, "first writes", timeout=60)
        log.warning("outage test: %s", await asyncio.to_thread(stack.cassandra.stop, 45))
        retries_at_stop = materializer.stats.retries
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_ends:  # the outage itself: history keeps flowing meanwhile
            assert not producing.done(), producing
            await asyncio.sleep(1)
        assert materializer.stats.retries > retries_at_stop, "the materializer never noticed the outage"
        assert sum((await materializer.lag()).values()) > 0
        written_during_outage = materializer.stats.events_written
    finally:
        await asyncio.to_thread(stack.up, log=lambda line: log.warning("outage test: %s", line))
    back = time.monotonic()
    await eventually(lambda: materializer.stats.events_written > written_during_outage, "writes to resume", timeout=60)
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

        await eventually(caught_up, "the materializer to catch up after the outage", timeout=240)
        with _connect(fresh) as conn:
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
