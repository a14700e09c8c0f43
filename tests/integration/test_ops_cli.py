"""``kflow runs …`` and ``kflow replay …`` through the real console command, against histories materialized
into the session's Cassandra keyspace (recorded with the InMemoryDriver, written with storage.HistoryWriter)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

import ops_workflows
from engine import Registry
from engine.runtime import HistoryEvent, SystemClock
from engine.testing import FakeClock, InMemoryDriver
from schemas import RecordCodec
from storage import CassandraConnection, CassandraTarget, HistoryWriter, migrate
from streams import Settings, Topics, create_topics

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Recorded:
    """The runs written to Cassandra for this module, by role."""

    orders: list[str]  # finished order runs, newest first; the last one started 3 days ago
    running: str  # an order run waiting in its sleep
    failed: str
    chain: list[str]  # countdown(2): three runs linked by continue-as-new, oldest first
    histories: dict[str, tuple[HistoryEvent, ...]]


async def _record() -> tuple[Recorded, list[HistoryEvent]]:
    now = SystemClock().now_ms()
    clock = FakeClock(now - 3 * DAY_MS)
    counter = iter(range(1, 1000))
    driver = InMemoryDriver(Registry.from_module("ops_workflows"), clock, run_ids=lambda: f"ops-{next(counter)}")
    orders = []
    for item, at in (
        ("old", now - 3 * DAY_MS),
        ("a", now - 40 * 60_000),
        ("b", now - 30 * 60_000),
        ("c", now - 20 * 60_000),
    ):
        clock.set(at)
        orders.append(driver.start(ops_workflows.order, item, 9.5))
        await driver.run_until_idle()
        clock.advance("1m")
        await driver.run_until_idle()
    clock.set(now - 10 * 60_000)
    failed = driver.start(ops_workflows.doomed, "widget")
    first = driver.start(ops_workflows.countdown, 2)
    running = driver.start(ops_workflows.order, "pending", 1.0)
    await driver.run_until_idle()
    chain = [first]
    while (following := _successor(driver.history(chain[-1]))) is not None:
        chain.append(following)
    ids = [*orders, failed, *chain, running]
    histories = {run_id: driver.history(run_id) for run_id in ids}
    events = [event for run_id in ids for event in histories[run_id]]
    return Recorded(orders[::-1], running, failed, chain, histories), events


def _successor(history: tuple[HistoryEvent, ...]) -> str | None:
    next_run_id = getattr(history[-1], "next_run_id", None)
    return next_run_id if isinstance(next_run_id, str) else None


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    """The session's settings with a keyspace of this module's own: listings see only its runs."""
    return settings.replace(keyspace=f"{settings.keyspace}_ops")


@pytest.fixture(scope="module")
def recorded(settings: Settings) -> Recorded:
    """Migrate the session keyspace, then materialize the recorded histories into it."""
    result, events = asyncio.run(_record())
    host, port = settings.cassandra_host_port

    async def write(conn: CassandraConnection) -> None:
        await HistoryWriter(conn, settings.keyspace).write(events)

    with CassandraConnection(CassandraTarget(host, port)) as conn:
        migrate(conn, settings.keyspace)
        asyncio.run(write(conn))
    return result


def kflow(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m streams.cli ARGS`` on the session's keyspace and topics, from this folder (-A)."""
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
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=HERE,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    assert done.returncode == status, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr.rstrip("\n")


# --- runs list ------------------------------------------------------------------------------------


def test_list_shows_every_run_newest_first_in_both_formats(settings: Settings, recorded: Recorded) -> None:
    data = json.loads(ok(kflow(settings, "runs", "list", "--json")))
    assert data["next_page"] is None
    runs = data["runs"]
    assert len(runs) == len(recorded.histories)
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    by_id = {r["run_id"]: r for r in runs}
    assert by_id[recorded.orders[0]]["result"] == {"reserved": "reserved c", "charged": 9.5}
    lines = ok(kflow(settings, "runs", "list")).splitlines()
    assert lines[0].split()[:4] == ["RUN", "ID", "WORKFLOW", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == [r["run_id"] for r in runs]
    assert lines[1 + [r["run_id"] for r in runs].index(recorded.failed)].split()[1:3] == ["doomed", "failed"]


def test_list_filters_by_status_and_by_workflow(settings: Settings, recorded: Recorded) -> None:
    failed = json.loads(ok(kflow(settings, "runs", "list", "--status", "failed", "--json")))["runs"]
    assert [r["run_id"] for r in failed] == [recorded.failed]
    assert failed[0]["error_type"] == "builtins.ValueError"
    chain = json.loads(ok(kflow(settings, "runs", "list", "--workflow", "countdown", "--json")))["runs"]
    assert sorted(r["run_id"] for r in chain) == sorted(recorded.chain)
    running = json.loads(ok(kflow(settings, "runs", "list", "--status", "running", "--json")))["runs"]
    assert [r["run_id"] for r in running] == [recorded.running]


def test_list_pages_one_run_at_a_time(settings: Settings, recorded: Recorded) -> None:
    seen: list[str] = []
    token: str | None = None
    for _ in range(len(recorded.histories) + 2):
        page = json.loads(
            ok(
                kflow(
                    settings,
                    "runs",
                    "list",
                    "--workflow",
                    "order",
                    "--limit",
                    "1",
                    "--json",
                    *(["--page", token] if token else []),
                )
            )
        )
        assert len(page["runs"]) <= 1
        seen += [r["run_id"] for r in page["runs"]]
        token = page["next_page"]
        if token is None:
            break
    assert seen == [recorded.running, *recorded.orders]  # newest first, each run once
    text = ok(kflow(settings, "runs", "list", "--workflow", "order", "--limit", "1"))
    assert text.splitlines()[-1].startswith("next page: --page ")


# --- runs show / events ---------------------------------------------------------------------------


def test_show_gives_status_timings_result_and_error(settings: Settings, recorded: Recorded) -> None:
    text = ok(kflow(settings, "runs", "show", recorded.orders[0]))
    fields = {line[:16].strip(): line[16:] for line in text.splitlines() if line[:1] != " " and line}
    assert fields["status"] == "completed" and fields["workflow"] == "order"
    assert fields["result"] == '{"reserved": "reserved c", "charged": 9.5}'
    assert fields["duration"] == "1m00s"
    failed = json.loads(ok(kflow(settings, "runs", "show", recorded.failed, "--json")))
    assert (failed["status"], failed["error_type"]) == ("failed", "builtins.ValueError")
    assert "out of stock" in failed["error_message"]


def test_show_follows_the_continue_as_new_chain(settings: Settings, recorded: Recorded) -> None:
    middle = recorded.chain[1]
    data = json.loads(ok(kflow(settings, "runs", "show", middle, "--json")))
    assert [link["run_id"] for link in data["chain"]] == recorded.chain
    assert [link["status"] for link in data["chain"]] == ["continued_as_new", "continued_as_new", "completed"]
    text = ok(kflow(settings, "runs", "show", middle))
    assert f"* {middle} (continued_as_new)" in text and f"{recorded.chain[2]} (completed)" in text


def test_events_lists_the_ordered_history(settings: Settings, recorded: Recorded) -> None:
    run_id = recorded.orders[0]
    history = recorded.histories[run_id]
    data = json.loads(ok(kflow(settings, "runs", "events", run_id, "--json")))
    assert [(e["seq"], e["type"]) for e in data] == [(e.seq, type(e).__name__) for e in history]
    lines = ok(kflow(settings, "runs", "events", run_id)).splitlines()
    assert [line.split()[2] for line in lines[1:]] == [type(e).__name__ for e in history]
    assert lines[-1].split()[:3] == [str(len(history)), "+1m00s", "WorkflowCompleted"]


# --- replay ---------------------------------------------------------------------------------------


def test_replay_of_unchanged_code_is_deterministic(settings: Settings, recorded: Recorded) -> None:
    run_id = recorded.orders[0]
    out = ok(kflow(settings, "replay", run_id, "-A", "ops_workflows"))
    assert out == f"run {run_id} (order): deterministic ({len(recorded.histories[run_id])} events)\n"
    for other in (recorded.failed, recorded.chain[0], recorded.running):
        assert "deterministic" in ok(kflow(settings, "replay", other, "-A", "ops_workflows"))


def test_replay_of_changed_code_reports_the_divergence(settings: Settings, recorded: Recorded) -> None:
    done = kflow(settings, "replay", recorded.orders[0], "-A", "ops_workflows_v2")
    assert done.returncode == 3, done.stderr  # 3: replay diverged
    assert "position 1: recorded sleep, new step 'refund'" in done.stdout
    as_json = kflow(settings, "replay", recorded.orders[0], "-A", "ops_workflows_v2", "--json")
    assert as_json.returncode == 3 and as_json.stderr == "", as_json.stderr
    assert json.loads(as_json.stdout) == {
        "run_id": recorded.orders[0],
        "workflow": "order",
        "deterministic": False,
        "events": len(recorded.histories[recorded.orders[0]]),
        "diverged": True,
        "position": 1,
        "recorded": "sleep",
        "new": "step 'refund'",
        "problem": None,
    }


def test_replay_of_every_run_of_a_workflow(settings: Settings, recorded: Recorded) -> None:
    clean = kflow(settings, "replay", "--workflow", "order", "-A", "ops_workflows")
    total = len(recorded.orders) + 1
    assert ok(clean) == f"{total} of {total} runs deterministic\n"
    assert f"{total}/{total} runs, 0 diverged" in clean.stderr
    changed = kflow(settings, "replay", "--workflow", "order", "-A", "ops_workflows_v2", "--since", "2d")
    assert changed.returncode == 3, changed.stderr
    lines = changed.stdout.splitlines()
    recent = [recorded.running, *recorded.orders[:-1]]  # the 3-day-old run is before --since
    assert lines[0] == f"0 of {len(recent)} runs deterministic"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == sorted(recent)
    assert all("position 1: recorded sleep, new step 'refund'" in line for line in lines[1:])
    limited = ok(kflow(settings, "replay", "--workflow", "order", "-A", "ops_workflows", "--limit", "2"))
    assert limited == "2 of 2 runs deterministic\n"
    as_json = kflow(settings, "replay", "--workflow", "order", "-A", "ops_workflows_v2", "--since", "2d", "--json")
    assert as_json.returncode == 3, as_json.stderr
    data = json.loads(as_json.stdout)  # the progress bar stays on stderr
    assert (data["workflow"], data["runs"], data["deterministic"]) == ("order", len(recent), 0)
    assert sorted(o["run_id"] for o in data["outcomes"]) == sorted(recent)
    assert all(o["diverged"] and o["position"] == 1 for o in data["outcomes"])


# --- errors and cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "show", "nope"],
        ["runs", "events", "nope"],
        ["runs", "cancel", "nope"],
        ["replay", "nope", "-A", "ops_workflows"],
    ],
)
def test_an_unknown_run_is_one_line(settings: Settings, recorded: Recorded, argv: list[str]) -> None:
    assert one_line_error(kflow(settings, *argv)) == f"kflow: error: no run nope in keyspace {settings.keyspace}"


def test_a_module_without_the_workflow_is_one_line(settings: Settings, recorded: Recorded) -> None:
    line = one_line_error(kflow(settings, "replay", recorded.chain[0], "-A", "ops_workflows_v2"))
    assert line == "kflow: error: -A ops_workflows_v2 does not define workflow 'countdown' (it defines: order)"
    assert "does not define workflow 'nope'" in one_line_error(
        kflow(settings, "replay", "--workflow", "nope", "-A", "ops_workflows")
    )


def test_cassandra_unreachable_is_one_line(settings: Settings) -> None:
    line = one_line_error(kflow(settings, "runs", "list", KFLOW_CASSANDRA="127.0.0.1:1"), status=4)
    assert line.startswith("kflow: error: Cassandra at 127.0.0.1:1 is unreachable")


def test_kafka_unreachable_is_one_line_and_exit_4(settings: Settings, recorded: Recorded) -> None:
    done = kflow(settings, "runs", "cancel", recorded.running, KFLOW_BOOTSTRAP="127.0.0.1:1")
    line = one_line_error(done, status=4)  # the run is read from Cassandra, the cancellation cannot be sent
    assert re.match(r"kflow: error: Kafka at 127\.0\.0\.1:1 is unreachable \(checking topic [\w.-]+\.schemas\): ", line)


def test_cancel_of_a_finished_run_changes_nothing(settings: Settings, recorded: Recorded) -> None:
    out = ok(kflow(settings, "runs", "cancel", recorded.failed))
    assert out == f"run {recorded.failed} already finished (failed): nothing to cancel\n"
    as_json = json.loads(ok(kflow(settings, "runs", "cancel", recorded.failed, "--json")))
    assert as_json == {"run_id": recorded.failed, "status": "failed", "sent": False}


async def test_cancel_of_a_running_run_sends_cancel_workflow(settings: Settings, recorded: Recorded) -> None:
    topic = Topics(settings.topic_prefix).inbox
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        for tp, offset in (await consumer.end_offsets(tps)).items():
            consumer.seek(tp, offset)
        done = await asyncio.to_thread(kflow, settings, "runs", "cancel", recorded.running, "--reason", "ops test")
        assert ok(done).startswith(f"cancellation of run {recorded.running} sent")
        codec, deadline = RecordCodec(), time.monotonic() + 30
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records = [codec.decode(m.value) for m in messages if m.key == recorded.running.encode()]
                if records:
                    assert [(type(r).__name__, getattr(r, "reason", None)) for r in records] == [
                        ("CancelWorkflow", "ops test")
                    ]
                    return
        pytest.fail("no CancelWorkflow reached the inbox")
    finally:
        await consumer.stop()


# --- runs lag -------------------------------------------------------------------------------------


async def test_lag_is_history_end_minus_the_materializer_commits(settings: Settings) -> None:
    prefix = f"{settings.topic_prefix}-lag"  # dropped with the session's topics (same prefix)
    topics = Topics(prefix)
    await create_topics(settings.bootstrap, topics, 2)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(topics.history, b"x", key=b"k", partition=0)
        await producer.send_and_wait(topics.history, b"y", key=b"k", partition=1)
    finally:
        await producer.stop()
    group = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=f"{prefix}.materializer", enable_auto_commit=False
    )
    await group.start()
    try:
        tp = TopicPartition(topics.history, 0)
        group.assign([tp])
        await group.commit({tp: OffsetAndMetadata(2, "")})
    finally:
        await group.stop()
    done = await asyncio.to_thread(kflow, settings, "runs", "lag", "--json", KFLOW_TOPIC_PREFIX=prefix)
    data = json.loads(ok(done))
    assert data["group"] == f"{prefix}.materializer" and data["lag"] == 4
    assert data["partitions"] == [
        {"partition": 0, "end": 5, "committed": 2, "lag": 3},
        {"partition": 1, "end": 1, "committed": None, "lag": 1},
    ]
    text = ok(await asyncio.to_thread(kflow, settings, "runs", "lag", KFLOW_TOPIC_PREFIX=prefix))
    assert text.splitlines()[-1].startswith("4 history records")
