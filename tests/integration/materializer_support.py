"""What the history materialization tests share: workflows of every outcome run by ``engine.InMemoryDriver``,
their histories, and readers of the history topic and of the events table."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from aiokafka import TopicPartition

from engine import Registry, continue_as_new, sleep, step, workflow
from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent, WorkflowContinuedAsNew
from engine.testing import FakeClock, InMemoryDriver
from schemas import RecordCodec, SchemaError
from storage import CassandraConnection, CassandraTarget
from streams import Settings, Topics
from streams.kafka import consumer
from support import eventually

DAY_MS = 86_400_000
RECORDS = RecordCodec()
Histories = dict[str, tuple[HistoryEvent, ...]]


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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def finish(driver: InMemoryDriver, clock: FakeClock, run_id: str) -> str:
    await driver.run_until_idle()
    clock.advance("1s")
    await driver.run_until_idle()
    return run_id


async def record_runs(start_ms: int) -> tuple[Histories, dict[str, str]]:
    """Runs of every outcome over three UTC days, ending around ``start_ms + 2 days``."""
    clock = FakeClock(start_ms)
    driver = InMemoryDriver(REGISTRY, clock)
    ids = {"order_old": await finish(driver, clock, driver.start(order, 5))}
    clock.advance("1d")
    ids["doomed"] = await finish(driver, clock, driver.start(doomed, "no stock"))
    ids["chain"] = await finish(driver, clock, driver.start(countdown, 2))
    ids["cancelled"] = driver.start(patient)
    await driver.run_until_idle()
    clock.advance("1m")
    driver.cancel(ids["cancelled"], "operator said so")
    await driver.run_until_idle()
    clock.advance("1d")
    ids["order_new"] = await finish(driver, clock, driver.start(order, 7))
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


def connect(settings: Settings) -> CassandraConnection:
    host, port = settings.cassandra_host_port
    return CassandraConnection(CassandraTarget(host, port))


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

        async def read_to_ends() -> bool:
            if all([await reader.position(tp) >= ends[tp] for tp in tps]):
                return True
            for messages in (await reader.getmany(timeout_ms=1000)).values():
                for message in messages:
                    try:
                        event = RECORDS.decode(message.value)
                    except SchemaError:
                        continue  # the junk record of the end-to-end test
                    if not isinstance(event, HISTORY_EVENT_TYPES):
                        raise TypeError(f"not a history event on the history topic: {event!r}")
                    found.add((event.run_id, event.seq, message.value))  # type: ignore[attr-defined]
            return False

        await eventually(read_to_ends, timeout=60, interval=0, what="the history topic to be read to its end")
    finally:
        await reader.stop()
    return found


def cassandra_events(conn: CassandraConnection, keyspace: str) -> set[tuple[str, int, bytes]]:
    rows = list(conn.session.execute(f"SELECT run_id, seq, data FROM {keyspace}.events"))
    found = {(row.run_id, row.seq, bytes(row.data)) for row in rows}
    assert len(found) == len(rows)
    return found
