"""``kflow compact`` and the retention methods of ``storage.RunStore`` against the real Cassandra and Kafka.

Each test materializes its own runs (written with storage.HistoryWriter) into a keyspace of its own, and
compaction sends its ForgetRun records to the inbox of a topic prefix of this module's, read back here.
The last test runs the orchestrator and the materializer (``hook_workflows``): the compacted run's marker
is tombstoned on the state topic and a late record for it becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cassandra.query import SimpleStatement

from engine import Registry
from engine.runtime import (
    CallArgs,
    ErrorInfo,
    ForgetRun,
    HistoryEvent,
    StepCompleted,
    SystemClock,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
)
from schemas import RecordCodec
from storage import (
    CassandraConnection,
    CassandraTarget,
    FinishedRun,
    HistorySize,
    HistoryWriter,
    RunRow,
    RunStore,
    StorageError,
    migrate,
)
from storage._migrations import load_migrations
from streams import (
    Client,
    HistoryMaterializer,
    HookDeliveryError,
    Orchestrator,
    Settings,
    Topics,
    create_topics,
    partition_for,
)
from streams.ops import CompactedRun, compact, marker_size

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
WEEK = "7d"
CODEC = RecordCodec()


# --- runs -----------------------------------------------------------------------------------------


def history(
    run_id: str,
    status: str | None,
    started_at: int,
    finished_at: int | None = None,
    steps: int = 3,
    workflow: str = "order",
) -> list[HistoryEvent]:
    """WorkflowStarted, ``steps`` StepCompleted and, unless ``status`` is None (running), the terminal event."""
    events: list[HistoryEvent] = [
        WorkflowStarted(
            run_id=run_id, seq=1, timestamp=started_at, workflow_name=workflow, args=CallArgs(("item", 9.5), {})
        )
    ]
    for position in range(steps):
        events.append(
            StepCompleted(
                run_id=run_id,
                seq=len(events) + 1,
                timestamp=started_at + position + 1,
                position=position,
                attempt=1,
                result={"step": position, "pad": "x" * position},
            )
        )
    if status is None:
        return events
    assert finished_at is not None
    meta = {"run_id": run_id, "seq": len(events) + 1, "timestamp": finished_at}
    terminal: HistoryEvent = (
        WorkflowCompleted(**meta, result={"ok": True})
        if status == "completed"
        else WorkflowFailed(**meta, error=ErrorInfo(type="builtins.ValueError", message="boom", retryable=False))
        if status == "failed"
        else WorkflowCancelled(**meta, reason="asked")
        if status == "cancelled"
        else WorkflowContinuedAsNew(**meta, next_run_id=f"{run_id}-next", args=CallArgs((), {}))
    )
    return [*events, terminal]


def size_of(events: list[HistoryEvent]) -> HistorySize:
    """What purging these events reclaims: HistoryWriter stores each event's RecordCodec bytes."""
    return HistorySize(len(events), sum(len(CODEC.encode(event)) for event in events))


@dataclass(frozen=True)
class Runs:
    """The runs of one test's keyspace, by role."""

    old: dict[str, str]  # run id -> terminal status; finished 8 to 11 days ago
    recent: str  # completed an hour ago
    running: str  # started 20 days ago, still running
    histories: dict[str, list[HistoryEvent]]

    @property
    def finished(self) -> list[str]:
        return [*self.old, self.recent]


def make_runs(tag: str, now: int) -> Runs:
    old = {f"{tag}-{status}": status for status in ("completed", "failed", "cancelled", "continued_as_new")}
    histories = {
        run_id: history(run_id, status, now - (12 + i) * DAY_MS, now - (8 + i) * DAY_MS, steps=2 + i)
        for i, (run_id, status) in enumerate(old.items())
    }
    recent, running = f"{tag}-recent", f"{tag}-running"
    histories[recent] = history(recent, "completed", now - 2 * 3_600_000, now - 3_600_000)
    histories[running] = history(running, None, now - 20 * DAY_MS)
    return Runs(old, recent, running, histories)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(settings: Settings) -> Settings:
    """The session's servers with this module's own topics (dropped with the session's: same prefix)."""
    prefix = f"{settings.topic_prefix}-compact"
    asyncio.run(create_topics(settings.bootstrap, Topics(prefix), settings.partitions))
    return dataclasses.replace(settings, topic_prefix=prefix)


@pytest.fixture()
def conn(base: Settings) -> Iterator[CassandraConnection]:
    host, port = base.cassandra_host_port
    with CassandraConnection(CassandraTarget(host, port)) as connection:
        yield connection


@pytest.fixture()
def ks(base: Settings, conn: CassandraConnection) -> Settings:
    """Settings on a migrated keyspace of this test's own (dropped with the session's: same prefix)."""
    isolated = dataclasses.replace(base, keyspace=f"{base.keyspace}_c{uuid.uuid4().hex[:8]}")
    migrate(conn, isolated.keyspace)
    return isolated


def materialize(conn: CassandraConnection, settings: Settings, events: list[HistoryEvent]) -> None:
    """Write ``events`` as the history materializer does."""

    async def write() -> None:
        await HistoryWriter(conn, settings.keyspace).write(events)

    asyncio.run(write())


@pytest.fixture()
def runs(ks: Settings, conn: CassandraConnection) -> Runs:
    """The standard mix of runs, materialized into the test's keyspace."""
    made = make_runs(ks.keyspace[-8:], SystemClock().now_ms())
    materialize(conn, ks, [event for events in made.histories.values() for event in events])
    return made


def kflow(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m streams.cli ARGS`` on the given keyspace and topic prefix."""
    full_env = {
        **os.environ,
        "KFLOW_KEYSPACE": settings.keyspace,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": str(settings.partitions),
        "KFLOW_BOOTSTRAP": settings.bootstrap,
        "KFLOW_CASSANDRA": settings.cassandra,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    assert done.returncode == status, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr.rstrip("\n")


# --- the inbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    key: bytes
    partition: int
    record: object


class Inbox:
    """Reads what was appended to the inbox between ``mark()`` and ``since_mark()`` (no waiting: the end
    offsets read after the sender returned include everything it had acknowledged)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topic = Topics(settings.topic_prefix).inbox
        self.tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        self.start: dict[TopicPartition, int] = {}

    async def ends(self) -> dict[TopicPartition, int]:
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            ends: dict[TopicPartition, int] = await reader.end_offsets(self.tps)
            return ends
        finally:
            await reader.stop()

    async def mark(self) -> None:
        self.start = await self.ends()

    async def since_mark(self) -> list[Received]:
        ends = await self.ends()
        if ends == self.start:
            return []  # (and no consumer stopped right after its assignment: aiokafka can raise there)
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False)
        await reader.start()
        found: list[Received] = []
        try:
            reader.assign(self.tps)
            for tp in self.tps:
                reader.seek(tp, self.start[tp])
            deadline = time.monotonic() + 30
            while any([await reader.position(tp) < ends[tp] for tp in self.tps]):
                assert time.monotonic() < deadline, "the inbox did not deliver up to its end offsets"
                for tp, messages in (await reader.getmany(timeout_ms=500)).items():
                    found += [
                        Received(m.key, tp.partition, CODEC.decode(m.value)) for m in messages if m.offset < ends[tp]
                    ]
        finally:
            await reader.stop()
        return found


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
    target, other = list(runs.old)[0], list(runs.old)[1]
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


# --- kflow compact --------------------------------------------------------------------------------


def _untouched(store: RunStore, runs: Runs, run_ids: list[str]) -> None:
    for run_id in run_ids:
        row = store.get_run(run_id)
        assert row is not None and row.compacted_at is None and not row.history_purged, run_id
        assert store.events(run_id) == runs.histories[run_id], run_id


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
    _untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))


async def test_compact_sends_one_forget_run_per_qualifying_run_and_marks_them(
    ks: Settings, conn: CassandraConnection, runs: Runs
) -> None:
    inbox = Inbox(ks)
    await inbox.mark()
    before = SystemClock().now_ms()
    report = json.loads(ok(await asyncio.to_thread(kflow, ks, "compact", "--older-than", WEEK, "--json")))
    after = SystemClock().now_ms()
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
    _untouched(store, runs, [runs.recent, runs.running])  # too recent, and not finished


async def test_a_second_compact_finds_nothing_new(ks: Settings, runs: Runs) -> None:
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
    _untouched(store, runs, [runs.running])


# --- errors ---------------------------------------------------------------------------------------


def test_a_bad_duration_is_one_line(ks: Settings) -> None:
    line = one_line_error(kflow(ks, "compact", "--older-than", "a week"))
    assert line.startswith("kflow: error: --older-than 'a week': expected a duration such as 7d")
    assert "--older-than" in one_line_error(kflow(ks, "compact"), status=2)  # required


def test_cassandra_unreachable_is_one_line(ks: Settings) -> None:
    line = one_line_error(kflow(ks, "compact", "--older-than", WEEK, KFLOW_CASSANDRA="127.0.0.1:1"))
    assert line.startswith("kflow: error: Cassandra at 127.0.0.1:1 is unreachable")


def test_an_unknown_keyspace_is_one_line_in_a_dry_run(base: Settings) -> None:
    line = one_line_error(kflow(base, "compact", "--older-than", WEEK, "--dry-run", KFLOW_KEYSPACE="kflow_nope_x"))
    assert line.startswith("kflow: error: cannot prepare the run queries in 'kflow_nope_x'")


def test_kafka_unreachable_is_one_line_and_marks_nothing(ks: Settings, conn: CassandraConnection, runs: Runs) -> None:
    line = one_line_error(kflow(ks, "compact", "--older-than", WEEK, KFLOW_BOOTSTRAP="127.0.0.1:1"))
    assert line.startswith(
        f"kflow: error: cannot send ForgetRun records to {Topics(ks.topic_prefix).inbox} at 127.0.0.1:1"
    )
    _untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))


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
    _untouched(RunStore(conn, ks.keyspace), runs, list(runs.histories))


# --- with the orchestrator ------------------------------------------------------------------------


async def _read_topic(
    bootstrap: str, topic: str, partition: int, key: bytes, enough: Callable[[list[Any]], bool], decode: bool = True
) -> list[Any]:
    """Values (decoded, None for a tombstone) of ``key`` on one partition, read-committed, until ``enough``."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await reader.start()
    found: list[Any] = []
    try:
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        reader.seek(tp, 0)
        deadline = time.monotonic() + 30
        while not enough(found):
            assert time.monotonic() < deadline, f"{topic}[{partition}] never had what was expected: {found}"
            for message in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                if message.key == key:
                    found.append(
                        None
                        if message.value is None
                        else CODEC.codec.decode(message.value)
                        if decode
                        else message.value
                    )
    finally:
        await reader.stop()
    return found


async def test_a_compacted_run_is_forgotten_by_the_orchestrator_and_a_late_record_goes_to_the_dlq(
    settings: Settings,
) -> None:
    own = dataclasses.replace(
        settings, topic_prefix=f"{settings.topic_prefix}-compact-e2e", keyspace=f"{settings.keyspace}_ce2e"
    )
    topics = Topics(own.topic_prefix)
    await create_topics(own.bootstrap, topics, own.partitions)
    registry = Registry.from_module("hook_workflows")
    orchestrator, materializer = Orchestrator(own, registry), HistoryMaterializer(own)
    await orchestrator.start()
    await materializer.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            done = await client.start("instant")
            waiting = await client.start("approve", "o-1")  # waits for its hook: never compacted
            assert await client.result(done, timeout=30) == "done"
            host, port = own.cassandra_host_port
            with CassandraConnection(CassandraTarget(host, port)) as conn:
                deadline = time.monotonic() + 30
                while not ((row := _row_if_ready(conn, own, done)) and row.status == "completed"):
                    assert time.monotonic() < deadline, "the finished run never reached Cassandra"
                    await asyncio.sleep(0.1)
            key, partition = done.encode(), partition_for(done.encode(), own.partitions)

            report = await compact(
                own, older_than_ms=0, purge_history=True, dry_run=False, now_ms=SystemClock().now_ms()
            )
            assert (report.runs, report.histories_purged) == (1, 1)

            # The orchestrator tombstones the run's marker on the state topic ...
            state = await _read_topic(
                own.bootstrap, topics.name("state"), partition, key, lambda found: bool(found) and found[-1] is None
            )
            assert [getattr(value, "name", None) for value in state][-2:] == ["RunMarker", None]
            # ... and a later record for the run is a dead letter, not a restart.
            with pytest.raises(HookDeliveryError, match=f"no run {done} on this partition"):
                await client.resume_hook(f"{done}:approval", {"ok": True})
            await client.cancel(done, reason="late")
            letters = await _read_topic(
                own.bootstrap,
                topics.dlq,
                partition,
                key,
                lambda found: any(CODEC.codec.decode(v.record["value"]).name == "CancelWorkflow" for v in found),
            )
            reasons = {CODEC.codec.decode(v.record["value"]).name: v.record["reason"] for v in letters}
            assert reasons["CancelWorkflow"] == f"no run {done} on this partition"

            # The running run was not touched.
            assert await client.resume_hook(f"{waiting}:approval", {"ok": True}) == "delivered"
            assert await client.result(waiting, timeout=30) == {"order_id": "o-1", "approved": True}
            with CassandraConnection(CassandraTarget(host, port)) as conn:
                row = RunStore(conn, own.keyspace).get_run(done)
                assert row is not None and row.status == "completed" and row.history_purged
    finally:
        await materializer.stop()
        await orchestrator.stop()


def _row_if_ready(conn: CassandraConnection, settings: Settings, run_id: str) -> RunRow | None:
    """The run's row once the materializer migrated the keyspace and wrote it (None before)."""
    try:
        return RunStore(conn, settings.keyspace).get_run(run_id)
    except StorageError:
        return None


# --- the migration --------------------------------------------------------------------------------


def test_migration_2_adds_the_compaction_columns_to_a_keyspace_at_1_and_runs_again_harmlessly(
    base: Settings, conn: CassandraConnection
) -> None:
    keyspace = f"{base.keyspace}_cmig"
    first, second = load_migrations()[:2]
    assert migrate(conn, keyspace, migrations=[first]) == [1]
    materialize(conn, dataclasses.replace(base, keyspace=keyspace), history("m", "completed", 1_000, 2_000))
    assert migrate(conn, keyspace) == [2] and migrate(conn, keyspace) == []
    for statement in second.statements:  # as after a crash before its schema_migrations row
        conn.session.execute(SimpleStatement(statement, keyspace=keyspace))
    row = RunStore(conn, keyspace).get_run("m")
    assert row is not None and row.status == "completed" and (row.compacted_at, row.history_purged) == (None, False)
