"""The retention methods of ``storage.RunStore`` against the real Cassandra: the scan of compactable runs,
the history purge, the compaction marks (as ``kflow runs show`` / ``runs events`` show them) and migration 2.

Each test materializes its own runs (written with storage.HistoryWriter) into a keyspace of its own
(fixtures in conftest.py, helpers in compact_support.py).
"""

from __future__ import annotations

import json

import pytest
from cassandra.query import SimpleStatement

from compact_support import DAY_MS, Runs, history, kflow, materialize, ok, size_of
from engine.runtime import SystemClock
from storage import CassandraConnection, FinishedRun, HistorySize, RunStore, load_migrations, migrate
from streams import Settings

pytestmark = pytest.mark.integration


# --- RunStore: the scan, purge and marks ----------------------------------------------------------


def test_the_scan_pages_through_more_runs_than_one_page(ks: Settings, conn: CassandraConnection) -> None:
    now = SystemClock().now_ms()
    old = [f"old-{i:02d}" for i in range(25)]
    events = [e for run_id in old for e in history(run_id, "completed", now - 9 * DAY_MS, now - 8 * DAY_MS, steps=1)]
    events += history("young", "failed", now - DAY_MS, now - 3_600_000) + history("busy", None, now - 30 * DAY_MS)
    materialize(conn, ks, events)
    store = RunStore(conn, ks.keyspace)
    cutoff = now - 7 * DAY_MS
    paged = list(store.compactable_runs(cutoff, page_size=7))  # 27 rows: four pages
    assert sorted(run.run_id for run in paged) == old
    assert paged[0] == FinishedRun(paged[0].run_id, "order", "completed", now - 8 * DAY_MS)
    assert sorted(r.run_id for r in store.compactable_runs(cutoff, page_size=1000)) == old
    assert sorted(r.run_id for r in store.compactable_runs(now + 1, page_size=5)) == sorted([*old, "young"])

    store.mark_compacted("old-03", compacted_at=now, history_purged=False)
    store.mark_compacted("old-04", compacted_at=now, history_purged=True)
    assert "old-03" not in {r.run_id for r in store.compactable_runs(cutoff, page_size=7)}
    again = {r.run_id: r for r in store.compactable_runs(cutoff, purge_history=True, page_size=7)}
    assert "old-04" not in again and again["old-03"].compacted_at == now and not again["old-03"].history_purged
    assert len(again) == 24


def test_purge_deletes_exactly_that_runs_events_and_returns_their_bytes(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    store = RunStore(conn, ks.keyspace)
    target, other = list(runs.old)[:2]
    expected = size_of(runs.histories[target])
    assert store.history_size(target) == expected
    assert store.purge_history(target) == expected and expected.bytes > 0
    assert store.events(target) == []
    assert store.events(other) == runs.histories[other]  # its neighbour is untouched
    assert store.events(runs.running) == runs.histories[runs.running]
    assert store.purge_history(target) == HistorySize(0, 0)
    row = store.get_run(target)
    assert row is not None and row.status == "completed"  # the runs row stays

    # The materializer writing the same events again (a redelivery, a rebuild) cannot bring them back:
    # its writes are stamped with the seq, the purge with the wall clock.
    materialize(conn, ks, runs.histories[target])
    assert store.events(target) == []


def test_a_compaction_mark_shows_in_get_run_and_runs_show(ks: Settings, conn: CassandraConnection, runs: Runs) -> None:
    store = RunStore(conn, ks.keyspace)
    purged, kept = list(runs.old)[:2]
    at = 1_767_225_600_123  # 2026-01-01 00:00:00.123 UTC
    store.purge_history(purged)
    store.mark_compacted(purged, compacted_at=at, history_purged=True)
    store.mark_compacted(kept, compacted_at=at, history_purged=False)
    row, plain, fresh = store.get_run(purged), store.get_run(kept), store.get_run(runs.recent)
    assert row is not None and (row.compacted_at, row.history_purged) == (at, True)
    assert plain is not None and (plain.compacted_at, plain.history_purged) == (at, False)
    assert fresh is not None and (fresh.compacted_at, fresh.history_purged) == (None, False)

    fields = {line[:16].strip(): line[16:] for line in ok(kflow(ks, "runs", "show", purged)).splitlines() if line}
    assert fields["compacted"] == "2026-01-01 00:00:00 UTC (history purged)"
    assert fields["events"] == f"{len(runs.histories[purged])} (history purged)"
    assert fields["status"] == "completed"
    fields = {line[:16].strip(): line[16:] for line in ok(kflow(ks, "runs", "show", kept)).splitlines() if line}
    assert fields["compacted"] == "2026-01-01 00:00:00 UTC"
    assert "compacted" not in ok(kflow(ks, "runs", "show", runs.recent))
    data = json.loads(ok(kflow(ks, "runs", "show", purged, "--json")))
    assert (data["compacted_at"], data["history_purged"], data["status"]) == (at, True, "completed")
    assert json.loads(ok(kflow(ks, "runs", "show", runs.recent, "--json")))["compacted_at"] is None

    text = ok(kflow(ks, "runs", "events", purged))
    assert text.startswith(
        f"the history of run {purged} ({len(runs.histories[purged])} events) was purged by "
        "kflow compact at 2026-01-01 00:00:00 UTC"
    )
    done = kflow(ks, "runs", "events", purged, "--json")
    assert json.loads(ok(done)) == [] and "was purged by kflow compact" in done.stderr
    assert len(json.loads(ok(kflow(ks, "runs", "events", kept, "--json")))) == len(runs.histories[kept])


# --- the migration --------------------------------------------------------------------------------


def test_migration_2_adds_the_compaction_columns_to_a_keyspace_at_1_and_runs_again_harmlessly(
    base: Settings, conn: CassandraConnection
) -> None:
    keyspace = f"{base.keyspace}_cmig"
    first, second, *later = load_migrations()
    # every migration but 2: the later ones add what today's writer needs (003: the children column)
    assert migrate(conn, keyspace, migrations=[first, *later]) == [1, *(m.version for m in later)]
    materialize(conn, base.replace(keyspace=keyspace), history("m", "completed", 1_000, 2_000))
    assert migrate(conn, keyspace) == [2] and migrate(conn, keyspace) == []
    for statement in second.statements:  # as after a crash before its schema_migrations row
        conn.session.execute(SimpleStatement(statement, keyspace=keyspace))
    row = RunStore(conn, keyspace).get_run("m")
    assert row is not None and row.status == "completed" and (row.compacted_at, row.history_purged) == (None, False)
