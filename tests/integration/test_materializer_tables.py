"""History materialization into the real Cassandra: the tables and listings, and idempotent rewrites.

Histories come from real workflows run by ``engine.InMemoryDriver`` (materializer_support.py), written into a
keyspace of this module's own, so the exact-equality checks see only their own data.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import pytest

from engine.runtime import WorkflowStarted
from materializer_support import (
    DAY_MS,
    Histories,
    chunks,
    connect,
    interleaved,
    newest_first,
    now_ms,
    record_runs,
    status_of,
)
from storage import CassandraConnection, HistoryWriter, RunStore, load_migrations, migrate
from streams import Settings

pytestmark = pytest.mark.integration

TABLES = ("events", "runs", "runs_by_status", "runs_by_workflow")
Written = tuple[str, Histories, dict[str, str]]  # keyspace, histories by run id, run ids by role


def snapshot(conn: CassandraConnection, keyspace: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every materialized table, sorted."""
    return {
        table: sorted((tuple(row) for row in conn.session.execute(f"SELECT * FROM {keyspace}.{table}")), key=repr)
        for table in TABLES
    }


@pytest.fixture(scope="module")
def conn(settings: Settings) -> Iterator[CassandraConnection]:
    with connect(settings) as connection:
        yield connection


@pytest.fixture(scope="module")
async def written(settings: Settings, conn: CassandraConnection) -> AsyncIterator[Written]:
    """A keyspace holding the recorded runs, written in batches of 7 interleaved events."""
    keyspace = f"{settings.keyspace}_w"
    assert migrate(conn, keyspace) == [m.version for m in load_migrations()]
    assert migrate(conn, keyspace) == []  # idempotent
    histories, ids = await record_runs(now_ms() - 2 * DAY_MS - 60_000)
    writer = HistoryWriter(conn, keyspace)
    for batch in chunks(interleaved(histories), 7):
        await writer.write(batch)
    yield keyspace, histories, ids
    with connect(settings) as after:  # a new session: the outage test may have restarted Cassandra since
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
        assert listed(status=status) == newest_first(histories, lambda h, wanted=status: status_of(h) == wanted), status
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


async def test_one_batch_of_many_runs_goes_out_as_packed_requests(
    settings: Settings, written: Written, conn: CassandraConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every run touches at least its events, runs and prefix partitions: one request per partition would be
    three per run. Packed (``storage.pack_groups``), a batch of all runs needs fewer requests than runs, and
    lands the same rows as the batches of 7 did."""
    keyspace, histories, _ = written
    packed = f"{settings.keyspace}_packed"
    migrate(conn, packed)
    sent: list[object] = []
    real = conn.session.execute_async

    def counting(statement: object, *args: object, **kwargs: object) -> object:
        sent.append(statement)
        return real(statement, *args, **kwargs)

    monkeypatch.setattr(conn.session, "execute_async", counting)
    try:
        await HistoryWriter(conn, packed).write(interleaved(histories))
        monkeypatch.undo()
        assert 0 < len(sent) < len(histories)
        assert snapshot(conn, packed) == snapshot(conn, keyspace)
    finally:
        monkeypatch.undo()
        conn.session.execute(f"DROP KEYSPACE IF EXISTS {packed}")
