"""Runs found by a prefix of their id (``runs_by_id_prefix``, migration 004) and bounded above by their start time, in
a real Cassandra: the rows the materializer's writer makes, pages in id order, filters, the exact-id fallback, and a
keyspace not migrated to 004 yet still listing by status."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from engine.runtime import CallArgs, ErrorInfo, HistoryEvent, SystemClock, WorkflowFailed, WorkflowStarted
from storage import CassandraConnection, HistoryWriter, RunStore, day_bucket, load_migrations, migrate

pytestmark = pytest.mark.integration

ARGS = CallArgs((), {})
NOW = SystemClock().now_ms()
FAIL = ErrorInfo(type="builtins.ValueError", message="no", retryable=False)


def started(run_id: str, workflow: str, at: int) -> WorkflowStarted:
    return WorkflowStarted(run_id=run_id, seq=1, timestamp=at, workflow_name=workflow, args=ARGS)


@pytest.fixture()
def keyspace(conn: CassandraConnection) -> Iterator[str]:
    name = f"kflowtest_prefix_{uuid.uuid4().hex[:8]}"
    migrate(conn, name)
    yield name
    conn.session.execute(f"DROP KEYSPACE IF EXISTS {name}")


async def write(conn: CassandraConnection, keyspace: str, events: list[HistoryEvent]) -> None:
    await HistoryWriter(conn, keyspace).write(events)


async def test_pages_by_prefix_in_id_order_with_filters(conn: CassandraConnection, keyspace: str) -> None:
    shared = [f"beef{n:028x}" for n in range(7)]
    others = [f"bee{n:029x}" for n in range(3)] + [f"beeg{n:028x}" for n in range(2)]
    events: list[HistoryEvent] = [
        started(run_id, "w" if index % 2 else "v", NOW - index * 60_000) for index, run_id in enumerate(shared + others)
    ]
    events.append(WorkflowFailed(run_id=shared[3], seq=2, timestamp=NOW, error=FAIL))
    await write(conn, keyspace, events)
    store = RunStore(conn, keyspace)
    first = store.list_runs(limit=3, run_id_prefix="beef")
    assert [r.run_id for r in first.runs] == shared[:3] and first.next_page
    rest = store.list_runs(limit=10, page=first.next_page, run_id_prefix="beef")
    assert [r.run_id for r in rest.runs] == shared[3:] and rest.next_page is None
    assert [r.run_id for r in store.list_runs(status="failed", run_id_prefix="beef").runs] == [shared[3]]
    assert [r.run_id for r in store.list_runs(workflow="v", run_id_prefix="beef0").runs] == shared[0:7:2]
    recent = store.list_runs(since=NOW - 90_000, run_id_prefix="beef").runs
    assert [r.run_id for r in recent] == shared[:2]
    older = store.list_runs(until=NOW - 90_000, run_id_prefix="beef").runs
    assert [r.run_id for r in older] == shared[2:]
    assert [r.run_id for r in store.list_runs(run_id_prefix=shared[5]).runs] == [shared[5]]
    assert store.list_runs(run_id_prefix="beeh").runs == []
    with pytest.raises(ValueError, match="page token"):
        store.list_runs(limit=3, page=first.next_page, run_id_prefix="beeg")


async def test_until_bounds_the_day_listings(conn: CassandraConnection, keyspace: str) -> None:
    ids = [uuid.uuid4().hex for _ in range(4)]
    await write(conn, keyspace, [started(run_id, "u", NOW - i * 3_600_000) for i, run_id in enumerate(ids)])
    store = RunStore(conn, keyspace)
    assert [r.run_id for r in store.list_runs(workflow="u").runs] == ids
    page = store.list_runs(workflow="u", until=NOW - 3_600_000 + 1, limit=2)
    assert [r.run_id for r in page.runs] == ids[1:3] and page.next_page
    rest = store.list_runs(workflow="u", until=NOW - 3_600_000 + 1, limit=2, page=page.next_page)
    assert [r.run_id for r in rest.runs] == ids[3:]
    assert [r.run_id for r in store.list_runs(status="running", until=NOW - 2 * 3_600_000).runs] == ids[3:]
    long_ago = NOW - 40 * 86_400_000
    await write(conn, keyspace, [started(ancient := uuid.uuid4().hex, "u", long_ago)])
    assert [r.run_id for r in store.list_runs(workflow="u", until=long_ago + 1).runs] == [ancient]  # 30 days from until
    assert ancient not in [r.run_id for r in store.list_runs(workflow="u").runs]  # 30 days from today


async def test_a_run_without_a_prefix_row_is_found_by_its_whole_id(conn: CassandraConnection, keyspace: str) -> None:
    run_id = uuid.uuid4().hex
    await write(conn, keyspace, [started(run_id, "old", NOW)])
    conn.session.execute(f"DELETE FROM {keyspace}.runs_by_id_prefix WHERE prefix = %s", (run_id[:4],))
    store = RunStore(conn, keyspace)
    assert store.list_runs(run_id_prefix=run_id[:8]).runs == []  # materialized before migration 004, say
    assert [r.run_id for r in store.list_runs(run_id_prefix=run_id).runs] == [run_id]
    assert [r.run_id for r in store.list_runs(run_id_prefix="ab").runs] == []  # short: an exact id, not a scan


async def test_a_keyspace_before_migration_4_still_lists_by_status(conn: CassandraConnection) -> None:
    name = f"kflowtest_prefix_{uuid.uuid4().hex[:8]}"
    try:
        migrate(conn, name, migrations=[m for m in load_migrations() if m.version < 4])
        for table, values in (
            ("runs (run_id, workflow_name, status, started_at)", ("r1", "w", "running", NOW)),
            ("runs_by_status (status, bucket, started_at, run_id)", ("running", day_bucket(NOW), NOW, "r1")),
        ):
            conn.session.execute(f"INSERT INTO {name}.{table} VALUES (%s, %s, %s, %s)", values)
        store = RunStore(conn, name)
        assert [r.run_id for r in store.list_runs(status="running").runs] == ["r1"]
    finally:
        conn.session.execute(f"DROP KEYSPACE IF EXISTS {name}")
