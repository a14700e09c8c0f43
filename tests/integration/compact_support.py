"""What the ``kflow compact`` tests share: runs of every outcome, materialized as the history materializer
does, the CLI run as a subprocess, and a reader of what compaction appended to the inbox.

The fixtures built on these (``base``, ``conn``, ``ks``, ``runs``) are in this folder's conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from engine.runtime import (
    CallArgs,
    ErrorInfo,
    ForgetRun,
    HistoryEvent,
    StepCompleted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
)
from schemas import RecordCodec
from storage import CassandraConnection, HistorySize, HistoryWriter, RunStore
from streams import Settings, Topics
from support import eventually

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


def materialize(conn: CassandraConnection, settings: Settings, events: list[HistoryEvent]) -> None:
    """Write ``events`` as the history materializer does."""

    async def write() -> None:
        await HistoryWriter(conn, settings.keyspace).write(events)

    asyncio.run(write())


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

            async def read_to_ends() -> bool:
                if all([await reader.position(tp) >= ends[tp] for tp in self.tps]):
                    return True
                for tp, messages in (await reader.getmany(timeout_ms=500)).items():
                    found.extend(
                        Received(m.key, tp.partition, CODEC.decode(m.value)) for m in messages if m.offset < ends[tp]
                    )
                return False

            await eventually(read_to_ends, interval=0, what="the inbox to deliver up to its end offsets")
        finally:
            await reader.stop()
        return found


def untouched(store: RunStore, runs: Runs, run_ids: list[str]) -> None:
    """Each of ``run_ids`` is not marked compacted and still has its whole history."""
    for run_id in run_ids:
        row = store.get_run(run_id)
        assert row is not None and row.compacted_at is None and not row.history_purged, run_id


@contextlib.asynccontextmanager
async def confirming(settings: Settings) -> AsyncIterator[None]:
    """Stand in for the orchestrator of the compaction tests' prefix, whose runs exist only in Cassandra: every
    ``ForgetRun`` appended to the inbox while this is open is answered as the orchestrator answers a finished run
    it forgets (a tombstone for its marker on ``.state``, on its partition), so ``kflow compact`` marks and purges
    it. (``test_compact_orchestrator.py`` and ``test_prefix_isolation.py`` run the real orchestrator.)"""
    inbox = Inbox(settings)
    await inbox.mark()
    state = Topics(settings.topic_prefix).state
    reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    writer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await reader.start()
    await writer.start()

    async def answer() -> None:
        reader.assign(inbox.tps)
        for tp in inbox.tps:
            reader.seek(tp, inbox.start[tp])
        while True:
            for tp, messages in (await reader.getmany(timeout_ms=200)).items():
                for message in messages:
                    if isinstance(CODEC.decode(message.value), ForgetRun):
                        await writer.send_and_wait(state, None, key=message.key, partition=tp.partition)

    task = asyncio.create_task(answer())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.stop()
        await reader.stop()
