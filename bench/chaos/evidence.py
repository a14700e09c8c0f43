"""What the checker reads after a chaos run: the topics (read to their end), Cassandra, and the step ledger.

Topics are read ``read_committed`` (what every kflow consumer sees); ``.history`` is also read
``read_uncommitted``, to count the records of aborted transactions — the writes of fenced zombies, which must
not count.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from engine.runtime import HistoryEvent, RunFinished, StepResult, TimerFired
from schemas import RecordCodec
from storage import CassandraConnection, CassandraTarget, RunStore
from streams import Settings, Topics, committed_lag
from streams.kafka import consumer


@dataclass(frozen=True)
class Message:
    """One record as read: where it is and its bytes."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Execution:
    """One execution of a step call, from the ledger file it created."""

    key: str
    n: int
    pid: int
    at_ms: int


@dataclass
class Evidence:
    """Everything the checker judges, read once."""

    history: dict[str, list[HistoryEvent]] = field(default_factory=dict)
    completions: dict[str, list[RunFinished]] = field(default_factory=dict)
    step_results: list[StepResult] = field(default_factory=list)
    timers_fired: list[TimerFired] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)  # "<record type>: <reason>"
    aborted_history_records: int = 0
    cassandra: dict[str, list[HistoryEvent]] = field(default_factory=dict)
    cassandra_status: dict[str, str | None] = field(default_factory=dict)
    materializer_lag: int = 0
    executions: dict[str, list[Execution]] | None = None
    undecodable: list[str] = field(default_factory=list)


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, from the brokers' metadata (a consumer's cache may not have the topic yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted((TopicPartition(topic, p["partition"]) for p in described["partitions"]), key=lambda tp: tp.partition)


async def read_topic(bootstrap: str, topic: str, *, committed: bool = True, timeout: float = 120.0) -> list[Message]:
    """Every record of ``topic`` from its start to its end (its last stable offset when ``committed``)."""
    tps = await topic_partitions(bootstrap, topic)
    reader = consumer(bootstrap, isolation_level="read_committed" if committed else "read_uncommitted")
    await reader.start()
    found: list[Message] = []
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        deadline = time.monotonic() + timeout
        for tp in tps:
            while await reader.position(tp) < ends[tp]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}[{tp.partition}] took over {timeout:g} s")
                for message in (await reader.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if message.offset < ends[tp]:
                        found.append(Message(tp.partition, message.offset, message.key, message.value))
    finally:
        await reader.stop()
    return found


async def wait_materialized(settings: Settings, timeout: float) -> int:
    """Wait until the materializer committed every history record (or ``timeout`` s); the lag left."""
    topic, group = Topics(settings.topic_prefix).history, f"{settings.topic_prefix}.materializer"
    deadline = time.monotonic() + timeout
    while True:
        try:
            lag = sum(p.lag for p in await committed_lag(settings.bootstrap, topic, group))
        except Exception:  # the broker may still be coming back
            lag = -1
        if lag == 0 or time.monotonic() > deadline:
            return lag
        await asyncio.sleep(1.0)


def read_ledger(chaos_dir: Path) -> dict[str, list[Execution]]:
    """Every step execution recorded under ``<chaos_dir>/steps`` (see ``bench.chaos.workflows``), by step key."""
    found: dict[str, list[Execution]] = collections.defaultdict(list)
    folder = chaos_dir / "steps"
    for path in folder.iterdir() if folder.is_dir() else ():
        stem, _, n = path.name.rpartition(".")
        text = path.read_text().split()
        pid, at_ms = (int(text[0]), int(text[1])) if len(text) == 2 else (0, 0)
        found[stem.replace("~", "/")].append(Execution(stem.replace("~", "/"), int(n), pid, at_ms))
    for executions in found.values():
        executions.sort(key=lambda e: e.n)
    return dict(found)


def read_cassandra(settings: Settings, run_ids: list[str]) -> tuple[dict[str, list[HistoryEvent]], dict]:
    """The materialized history and ``runs.status`` of each run."""
    host, port = settings.cassandra_host_port
    events: dict[str, list[HistoryEvent]] = {}
    status: dict[str, str | None] = {}
    with CassandraConnection(CassandraTarget(host, port), request_timeout=30.0) as conn:
        store = RunStore(conn, settings.keyspace)
        for run_id in run_ids:
            events[run_id] = store.events(run_id)
            row = store.get_run(run_id)
            status[run_id] = None if row is None else row.status
    return events, status


async def gather(settings: Settings, chaos_dir: Path | None, *, materialize_timeout: float = 180.0) -> Evidence:
    """Read everything the checker needs (waiting first for the materializer to catch up)."""
    topics, records = Topics(settings.topic_prefix), RecordCodec(secret=settings.secret)
    found = Evidence(materializer_lag=await wait_materialized(settings, materialize_timeout))

    def decode(message: Message, where: str) -> object | None:
        try:
            return records.decode(message.value)
        except Exception as exc:
            found.undecodable.append(f"{where}[{message.partition}]@{message.offset}: {type(exc).__name__}: {exc}")
            return None

    history = await read_topic(settings.bootstrap, topics.history)
    for message in history:
        event = decode(message, topics.history)
        if event is not None:
            found.history.setdefault(event.run_id, []).append(event)  # type: ignore[attr-defined]
    everything = await read_topic(settings.bootstrap, topics.history, committed=False)
    found.aborted_history_records = len(everything) - len(history)
    for message in await read_topic(settings.bootstrap, topics.completions):
        record = decode(message, topics.completions)
        if isinstance(record, RunFinished):
            found.completions.setdefault(record.run_id, []).append(record)
    for message in await read_topic(settings.bootstrap, topics.inbox):
        record = decode(message, topics.inbox)
        if isinstance(record, StepResult):
            found.step_results.append(record)
        elif isinstance(record, TimerFired):
            found.timers_fired.append(record)
    for message in await read_topic(settings.bootstrap, topics.dlq):
        found.dead_letters.append(_dead_letter(records, message.value))
    found.cassandra, found.cassandra_status = await asyncio.to_thread(read_cassandra, settings, sorted(found.history))
    if chaos_dir is not None:
        found.executions = read_ledger(chaos_dir)
    return found


def _dead_letter(records: RecordCodec, value: bytes) -> str:
    """``"<type of the refused record>: <reason>"`` of one ``DeadLetter``."""
    letter = records.codec.decode(value).record
    try:
        kind = records.codec.decode(bytes(letter["value"])).name  # type: ignore[arg-type]
    except Exception:
        kind = "undecodable"
    return f"{kind}: {letter['reason']}"
