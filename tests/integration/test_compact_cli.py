"""``kflow compact`` against the real Cassandra and Kafka: what it sends, marks and purges, and its errors.

Each test materializes its own runs into a keyspace of its own (fixtures in conftest.py, helpers in
compact_support.py); compaction sends its ForgetRun records to the inbox of the compaction tests' topic
prefix, read back here.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from compact_support import (
    CODEC,
    DAY_MS,
    WEEK,
    Inbox,
    Runs,
    confirming,
    kflow,
    ok,
    one_line_error,
    size_of,
    untouched,
)
from engine.runtime import ForgetRun, SystemClock
from storage import CassandraConnection, FinishedRun, RunStore
from streams import Settings, Topics, partition_for
from streams.ops import CompactedRun, OpsError, compact, marker_size

pytestmark = pytest.mark.integration


async def test_a_dry_run_lists_and_counts_and_changes_nothing(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    inbox = Inbox(ks)
    await inbox.mark()
    done = await asyncio.to_thread(kflow, ks, "compact", "--older-than", WEEK, "--purge-history", "--dry-run", "--json")
    report = json.loads(ok(done))
    sizes = [size_of(runs.histories[run_id]) for run_id in runs.old]
    assert report["dry_run"] is True and report["older_than_ms"] == 7 * DAY_MS
    assert sorted(report["run_ids"]) == sorted(runs.old) and report["runs"] == len(runs.old)
    assert (report["histories_purged"], report["events_purged"], report["cassandra_bytes_purged"]) == (
        len(runs.old),
        sum(s.events for s in sizes),
        sum(s.bytes for s in sizes),
    )
    assert report["state_bytes_tombstoned"] > 0
    text = ok(await asyncio.to_thread(kflow, ks, "compact", "--older-than", WEEK, "--dry-run"))
    assert sorted(line.split()[2] for line in text.splitlines() if line.startswith("would compact")) == sorted(runs.old)
    assert f"dry run: would compact {len(runs.old)} runs finished before " in text
    assert "history: kept in Cassandra" in text
    assert await inbox.since_mark() == []
    untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))


async def test_compact_sends_one_forget_run_per_qualifying_run_and_marks_them(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    inbox = Inbox(ks)
    await inbox.mark()
    before = SystemClock().now_ms()
    async with confirming(ks):
        report = json.loads(ok(await asyncio.to_thread(kflow, ks, "compact", "--older-than", WEEK, "--json")))
    after = SystemClock().now_ms()
    assert (report["unconfirmed"], report["unconfirmed_runs"]) == (0, [])
    received = await inbox.since_mark()
    assert sorted(r.key for r in received) == sorted(run_id.encode() for run_id in runs.old)  # one each
    for item in received:
        record = item.record
        assert isinstance(record, ForgetRun) and record.run_id.encode() == item.key
        assert item.partition == partition_for(item.key, ks.partitions)  # the run's partition
        assert before <= record.requested_at <= after
        assert record.reason == f"finished before {report['cutoff']}"
    assert before - 7 * DAY_MS <= report["cutoff_ms"] <= after - 7 * DAY_MS
    store = RunStore(conn, ks.keyspace)
    finished = {r.run_id: r for r in store.compactable_runs(report["cutoff_ms"])}  # none left to compact
    assert finished == {}
    markers = 0
    for run_id, status in runs.old.items():
        row = store.get_run(run_id)
        assert row is not None and row.status == status and not row.history_purged
        assert row.compacted_at is not None and before <= row.compacted_at <= after
        assert store.events(run_id) == runs.histories[run_id]  # history kept by default
        assert row.finished_at is not None
        markers += marker_size(
            CODEC, FinishedRun(run_id, row.workflow_name, row.status, row.finished_at, row.next_run_id)
        )
    assert (
        report["runs"],
        report["histories_purged"],
        report["events_purged"],
        report["cassandra_bytes_purged"],
        report["state_bytes_tombstoned"],
        report["dry_run"],
    ) == (len(runs.old), 0, 0, 0, markers, False)
    untouched(store, runs, [runs.recent, runs.running])  # too recent, and not finished


async def test_a_second_compact_finds_nothing_new(ks: Settings, runs: Runs) -> None:
    async with confirming(ks):
        await _second_compact_finds_nothing_new(ks, runs)


async def _second_compact_finds_nothing_new(ks: Settings, runs: Runs) -> None:
    inbox = Inbox(ks)
    first = await compact(
        ks, older_than_ms=7 * DAY_MS, purge_history=False, dry_run=False, now_ms=SystemClock().now_ms()
    )
    assert first.runs == len(runs.old)
    await inbox.mark()
    second = await compact(
        ks, older_than_ms=7 * DAY_MS, purge_history=False, dry_run=False, now_ms=SystemClock().now_ms()
    )
    assert (second.runs, second.histories_purged, second.state_bytes_tombstoned) == (0, 0, 0)
    assert await inbox.since_mark() == []
    # Purging later reaches the runs compacted without it, and sends nothing again.
    purged = await compact(
        ks, older_than_ms=7 * DAY_MS, purge_history=True, dry_run=False, now_ms=SystemClock().now_ms()
    )
    sizes = [size_of(runs.histories[run_id]) for run_id in runs.old]
    assert (purged.runs, purged.histories_purged, purged.events_purged, purged.cassandra_bytes_purged) == (
        0,
        len(runs.old),
        sum(s.events for s in sizes),
        sum(s.bytes for s in sizes),
    )
    assert await inbox.since_mark() == []
    third = await compact(
        ks, older_than_ms=7 * DAY_MS, purge_history=True, dry_run=False, now_ms=SystemClock().now_ms()
    )
    assert (third.runs, third.histories_purged, third.events_purged) == (0, 0, 0)


async def test_older_than_zero_compacts_and_purges_every_finished_run_in_one_pass(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    inbox = Inbox(ks)
    await inbox.mark()
    seen: list[CompactedRun] = []
    now = SystemClock().now_ms()
    async with confirming(ks):
        report = await compact(
            ks, older_than_ms=0, purge_history=True, dry_run=False, now_ms=now, progress=seen.append, chunk=2
        )  # three rounds
    assert report.cutoff_ms == now
    assert sorted(run.run_id for run in seen) == sorted(runs.finished)
    assert all(run.forgotten and run.purged == size_of(runs.histories[run.run_id]) for run in seen)
    assert (report.runs, report.histories_purged) == (len(runs.finished), len(runs.finished))
    assert report.cassandra_bytes_purged == sum(size_of(runs.histories[r]).bytes for r in runs.finished)
    assert sorted(r.key.decode() for r in await inbox.since_mark()) == sorted(runs.finished)
    store = RunStore(conn, ks.keyspace)
    for run_id in runs.finished:
        row = store.get_run(run_id)
        assert row is not None and row.compacted_at == now and row.history_purged
        assert store.events(run_id) == []
    untouched(store, runs, [runs.running])


async def test_without_an_orchestrators_answer_nothing_is_marked_or_purged(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    inbox = Inbox(ks)
    await inbox.mark()
    with pytest.raises(OpsError, match=r"no orchestrator answered the ForgetRun records of 4 run\(s\) within 2 s"):
        await compact(
            ks,
            older_than_ms=7 * DAY_MS,
            purge_history=True,
            dry_run=False,
            now_ms=SystemClock().now_ms(),
            confirm_timeout=2.0,
        )
    assert sorted(r.key.decode() for r in await inbox.since_mark()) == sorted(runs.old)  # asked, never answered
    untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))


# --- errors ---------------------------------------------------------------------------------------


def test_a_bad_duration_is_one_line(ks: Settings) -> None:
    line = one_line_error(kflow(ks, "compact", "--older-than", "a week"), status=2)  # a usage error
    assert line.startswith("kflow: error: --older-than 'a week': expected a duration such as 7d")
    assert "--older-than" in one_line_error(kflow(ks, "compact"), status=2)  # required


def test_cassandra_unreachable_is_one_line(ks: Settings) -> None:
    line = one_line_error(
        kflow(ks, "compact", "--older-than", WEEK, KFLOW_CASSANDRA="127.0.0.1:1"), status=4
    )  # unreachable
    assert line.startswith("kflow: error: Cassandra at 127.0.0.1:1 is unreachable")


def test_an_unknown_keyspace_is_one_line_in_a_dry_run(base: Settings) -> None:
    line = one_line_error(kflow(base, "compact", "--older-than", WEEK, "--dry-run", KFLOW_KEYSPACE="kflow_nope_x"))
    assert line.startswith("kflow: error: cannot prepare the run queries in 'kflow_nope_x'")


def test_kafka_unreachable_is_one_line_and_marks_nothing(ks: Settings, conn: CassandraConnection, runs: Runs) -> None:
    line = one_line_error(
        kflow(ks, "compact", "--older-than", WEEK, KFLOW_BOOTSTRAP="127.0.0.1:1"), status=4
    )  # unreachable
    inbox = Topics(ks.topic_prefix).inbox
    assert line.startswith(f"kflow: error: Kafka at 127.0.0.1:1 is unreachable (sending ForgetRun records to {inbox})")
    untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))


async def test_a_missing_inbox_is_one_line_creates_no_topic_and_marks_nothing(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    prefix = f"{ks.topic_prefix}-none"
    done = await asyncio.to_thread(kflow, ks, "compact", "--older-than", WEEK, KFLOW_TOPIC_PREFIX=prefix)
    assert one_line_error(done) == (
        f"kflow: error: there is no topic {prefix}.inbox on {ks.bootstrap} (KFLOW_TOPIC_PREFIX?)"
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=ks.bootstrap)
    await admin.start()
    try:
        assert f"{prefix}.inbox" not in await admin.list_topics()
    finally:
        await admin.close()
    untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))
