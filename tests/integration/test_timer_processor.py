"""The timer processor against the real broker: timers armed on ``.timers`` fire on ``.inbox``."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from engine.runtime import CancelTimer, StartTimer, TimerFired
from schemas import Codec, RecordCodec
from streams import Settings, Topics
from streams.kafka import consumer, producer
from streams.processors import TimerIndex, TimerProcessor

pytestmark = pytest.mark.integration

RECORDS = RecordCodec()
LATENESS_MS: list[int] = []  # fired_at - fire_at of timers armed ahead of time, over the whole module


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _run_id_on(partition: int, partitions: int) -> str:
    """A fresh run id whose records land on ``partition`` (murmur2 of the raw UTF-8 key)."""
    every = list(range(partitions))
    while True:
        run_id = uuid.uuid4().hex
        if DefaultPartitioner()(run_id.encode(), every, every) == partition:
            return run_id


def _arm(run_id: str, position: int, fire_at: int, kind: str = "sleep") -> StartTimer:
    return StartTimer(
        run_id=run_id,
        timer_id=f"{kind}:{position}:0",
        position=position,
        kind=kind,
        fire_at=fire_at,
        requested_at=_now_ms(),
    )


def _cancel(timer: StartTimer) -> CancelTimer:
    return CancelTimer(run_id=timer.run_id, timer_id=timer.timer_id, requested_at=_now_ms())


def _percentiles(samples: list[int]) -> str:
    if len(samples) < 2:
        return f"n={len(samples)}"
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"n={len(samples)} p50={cuts[49]:.0f}ms p99={cuts[98]:.0f}ms max={max(samples)}ms"


async def _wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Seen:
    """One record read back, with the wall time it reached the test."""

    key: bytes
    value: bytes
    received_ms: int


class TopicReader:
    """Reads a topic from the beginning (no group), keeping the records whose key is of interest."""

    def __init__(self, settings: Settings, topic: str, keys: set[bytes]) -> None:
        self.keys = keys
        self.seen: list[Seen] = []
        self._consumer = consumer(settings.bootstrap, fetch_max_wait_ms=20)
        self._partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def read_until(self, done: Callable[[list[Seen]], bool], timeout: float = 30.0) -> list[Seen]:
        """Poll until ``done(seen)`` holds; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done(self.seen):
            assert time.monotonic() < deadline, f"timed out; read so far: {len(self.seen)} record(s)"
            await self._poll()
        return self.seen

    async def drain(self) -> list[Seen]:
        """Read up to the current end of every partition (to see duplicates that may follow)."""
        ends = await self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + 30
        for tp, end in ends.items():
            while await self._consumer.position(tp) < end:
                assert time.monotonic() < deadline, "timed out draining"
                await self._poll()
        return self.seen

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        received = _now_ms()
        for messages in batches.values():
            self.seen.extend(Seen(m.key, m.value, received) for m in messages if m.key in self.keys)


def _fired(seen: list[Seen]) -> list[tuple[TimerFired, int]]:
    decoded = [(RECORDS.decode(s.value), s.received_ms) for s in seen]
    return [(record, received) for record, received in decoded if isinstance(record, TimerFired)]


def _fired_ids(seen: list[Seen]) -> set[str]:
    return {fired.timer_id for fired, _ in _fired(seen)}


@asynccontextmanager
async def _timers_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    out = producer(settings.bootstrap)
    await out.start()
    try:
        yield out
    finally:
        await out.stop()


async def _send(out: AIOKafkaProducer, settings: Settings, *records: StartTimer | CancelTimer) -> list[int]:
    topic = Topics(settings.topic_prefix).timers
    metas = [await out.send_and_wait(topic, RECORDS.encode(r), key=r.run_id.encode()) for r in records]
    return [meta.offset for meta in metas]


@asynccontextmanager
async def _running(settings: Settings, state_dir: Path, head_size: int = 1024) -> AsyncIterator[TimerProcessor]:
    processor = TimerProcessor(settings, state_dir=state_dir, head_size=head_size)
    await processor.start()
    try:
        await _wait_until(lambda: len(processor.assigned) == settings.partitions, "partition assignment")
        yield processor
    finally:
        await processor.stop()


def _check_fired_once_in_order(armed: list[StartTimer], fired: list[tuple[TimerFired, int]]) -> None:
    """Each armed timer fired exactly once, never early, and per run in due order."""
    counts = Counter((f.run_id, f.timer_id) for f, _ in fired)
    assert all(n == 1 for n in counts.values()), counts
    assert set(counts) == {(t.run_id, t.timer_id) for t in armed}
    by_key = {(t.run_id, t.timer_id): t for t in armed}
    for record, received_ms in fired:
        timer = by_key[(record.run_id, record.timer_id)]
        assert (record.position, record.kind, record.fire_at) == (timer.position, timer.kind, timer.fire_at)
        assert record.fired_at >= timer.fire_at and received_ms >= timer.fire_at
    for run_id in {t.run_id for t in armed}:
        order = [(f.fire_at, f.timer_id) for f, _ in fired if f.run_id == run_id]
        assert order == sorted(order)


def _record_lateness(fired: list[tuple[TimerFired, int]], armed_at: int) -> list[int]:
    samples = [f.fired_at - f.fire_at for f, _ in fired if f.fire_at > armed_at]
    LATENESS_MS.extend(samples)
    return samples


async def test_timers_fire_once_not_early_and_in_due_order(settings: Settings, tmp_path: Path) -> None:
    runs = [_run_id_on(p, settings.partitions) for p in range(settings.partitions)]
    async with _running(settings, tmp_path) as processor, _timers_producer(settings) as out:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {r.encode() for r in runs}) as inbox:
            now = _now_ms()
            armed = [
                _arm(run, position, now + delay)
                for run in runs
                for position, delay in enumerate([1000, -1000, 500, 200])
            ]  # sent out of due order
            await _send(out, settings, *armed)
            await inbox.read_until(lambda seen: len(_fired(seen)) >= len(armed))
            fired = _fired(await inbox.drain())
        _check_fired_once_in_order(armed, fired)
        # The processor counts a fire once its acks are in and deletes it from the index after the changelog
        # tombstone is acknowledged: both come a moment after the inbox consumer can already see the record.
        await _wait_until(
            lambda: processor.stats.fired == len(armed) and processor.stats.pending == 0, "the processor's counters"
        )
        assert processor.stats.fired == len(armed)  # and not more: no timer fired twice
    print(f"\nlateness (200ms..1s timers): {_percentiles(_record_lateness(fired, now))}")


async def test_cancelled_timer_never_fires(settings: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    async with _running(settings, tmp_path) as processor, _timers_producer(settings) as out:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {run.encode()}) as inbox:
            now = _now_ms()
            persisted, same_batch, witness = (
                _arm(run, 0, now + 1700),
                _arm(run, 1, now + 1600),
                _arm(run, 2, now + 2200),
            )
            await _send(out, settings, persisted)
            await _wait_until(lambda: processor.stats.pending == 1, "the first timer in the index")
            await _send(out, settings, _cancel(persisted), same_batch, _cancel(same_batch), witness)
            await inbox.read_until(lambda seen: witness.timer_id in _fired_ids(seen))
            fired = _fired(await inbox.drain())
        await _wait_until(lambda: processor.stats.pending == 0, "the last tombstone")  # no leftover for later tests
    assert [f.timer_id for f, _ in fired] == [witness.timer_id]


async def test_malformed_records_go_to_the_dlq_and_later_timers_still_fire(settings: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    topics = Topics(settings.topic_prefix)
    stray = TimerFired(run_id=run, timer_id="sleep:9:0", position=9, kind="sleep", fire_at=1, fired_at=2)
    async with _running(settings, tmp_path) as processor, _timers_producer(settings) as out:
        garbage = await out.send_and_wait(topics.timers, b"\x00not an avro record", key=run.encode())
        wrong_type = await out.send_and_wait(topics.timers, RECORDS.encode(stray), key=run.encode())
        later = _arm(run, 0, _now_ms() + 200)
        async with TopicReader(settings, topics.inbox, {run.encode()}) as inbox:
            await _send(out, settings, later)
            await inbox.read_until(lambda seen: later.timer_id in _fired_ids(seen))
        async with TopicReader(settings, topics.dlq, {run.encode()}) as dlq:
            seen = await dlq.read_until(lambda seen: len(seen) >= 2)
        await _wait_until(lambda: processor.stats.dead_lettered == 2, "the dead-letter count")
        await _wait_until(lambda: processor.stats.pending == 0, "the last tombstone")
    letters = {d.record["offset"]: d.record for d in (Codec().decode(s.value) for s in seen)}
    assert set(letters) == {garbage.offset, wrong_type.offset}
    for offset, letter in letters.items():
        assert letter["topic"] == topics.timers and letter["key"] == run.encode() and letter["reason"]
    assert letters[garbage.offset]["value"] == b"\x00not an avro record"
    assert letters[garbage.offset]["error_type"] == "schemas._errors.SchemaError"
    assert "TimerFired" in str(letters[wrong_type.offset]["reason"])


async def test_more_timers_than_the_head_holds_all_fire_in_order(settings: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    rng = random.Random(5)
    async with _running(settings, tmp_path, head_size=8) as processor, _timers_producer(settings) as out:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {run.encode()}) as inbox:
            # Due 1.3 s to 2.5 s from now: both batches are in the index before the first one is due.
            now = _now_ms()
            armed = [_arm(run, position, now + 1000 + rng.randrange(300, 1500)) for position in range(50)]
            await _send(out, settings, *armed[:25])  # a first batch fills the head past its bound ...
            await _wait_until(lambda: processor.stats.pending + processor.stats.fired >= 25, "the first batch")
            await _send(out, settings, *armed[25:])  # ... then arrivals land before and beyond its horizon
            await inbox.read_until(lambda seen: len(_fired(seen)) >= len(armed))
            fired = _fired(await inbox.drain())
        await _wait_until(lambda: processor.stats.pending == 0, "the last tombstones")
        _check_fired_once_in_order(armed, fired)
        late = _record_lateness(fired, now)
    print(f"\nlateness (50 timers, head_size=8): {_percentiles(late)}")
    print(f"lateness over the module so far: {_percentiles(LATENESS_MS)}")


_ENTRY = """
import asyncio, logging, os, signal, sys
from pathlib import Path
from streams import Settings
from streams.processors import TimerProcessor

async def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("streams").setLevel(logging.INFO)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    processor = TimerProcessor(Settings.from_env(), state_dir=Path(os.environ["KFLOW_DELAY_STATE"]))
    await processor.run_until(stop)

asyncio.run(main())
"""


def _spawn(settings: Settings, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KFLOW_BOOTSTRAP": settings.bootstrap,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": str(settings.partitions),
        "KFLOW_DELAY_STATE": str(state_dir),
    }
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-c", _ENTRY], env=env, stdout=sink, stderr=sink)


async def _committed(settings: Settings, tp: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}.delay", partitions=[tp])
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return -1 if meta is None else int(meta.offset)


async def _wait_committed(settings: Settings, tp: TopicPartition, offset: int) -> None:
    deadline = time.monotonic() + 30
    while await _committed(settings, tp) <= offset:
        assert time.monotonic() < deadline, f"offset {offset} of {tp} never committed"
        await asyncio.sleep(0.1)


async def test_timer_survives_kill_9_of_the_processor(settings: Settings, tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "delay.log"
    run = _run_id_on(0, settings.partitions)
    first = _spawn(settings, state, log)
    try:
        await _wait_until(
            lambda: log.read_text().count(" assigned: ") == settings.partitions,
            "the subprocess to own every partition",
            timeout=60,
        )
        async with _timers_producer(settings) as out:
            timer = _arm(run, 0, _now_ms() + 3000)
            (offset,) = await _send(out, settings, timer)
        # Committed offset => the record is in SQLite and will not be re-read: a fire must come from there.
        await _wait_committed(settings, TopicPartition(Topics(settings.topic_prefix).timers, 0), offset)
        assert first.poll() is None and _now_ms() < timer.fire_at
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    index = TimerIndex(state / settings.topic_prefix / "timers-0.sqlite3")
    assert [t.timer_id for t in index.earliest(10)] == [timer.timer_id]
    index.close()
    second = _spawn(settings, state, log)
    try:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {run.encode()}) as inbox:
            fired = _fired(await inbox.read_until(lambda seen: bool(_fired(seen)), timeout=90))
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait(timeout=30)
    assert {f.timer_id for f, _ in fired} == {timer.timer_id}  # a duplicate would be allowed; none expected
    assert all(f.fired_at >= timer.fire_at and received >= timer.fire_at for f, received in fired)
    # The first process built its (empty) indexes from the changelog; the restart found them current.
    assert log.read_text().count("index rebuilt from") == settings.partitions


async def _wait_all_committed(settings: Settings, armed: list[StartTimer], offsets: list[int]) -> None:
    """Wait until the group committed past every record sent: none of them will be read from .timers again."""
    partitions = settings.partitions
    last: dict[int, int] = {}
    for record, offset in zip(armed, offsets, strict=True):
        partition = DefaultPartitioner()(record.run_id.encode(), list(range(partitions)), list(range(partitions)))
        last[partition] = max(last.get(partition, -1), offset)
    for partition, offset in last.items():
        await _wait_committed(settings, TopicPartition(Topics(settings.topic_prefix).timers, partition), offset)


async def test_timers_armed_on_one_host_fire_on_another_with_an_empty_state_dir(
    settings: Settings, tmp_path: Path
) -> None:
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    runs = [_run_id_on(p, settings.partitions) for p in range(settings.partitions)]
    topics = Topics(settings.topic_prefix)
    async with TopicReader(settings, topics.inbox, {r.encode() for r in runs}) as inbox:
        async with _running(settings, host_a) as first, _timers_producer(settings) as out:
            now = _now_ms()
            handed_over = [
                _arm(run, position, now + delay) for run in runs for position, delay in enumerate([9000, 8000, 8500])
            ]
            offsets = await _send(out, settings, *handed_over)
            await _wait_until(lambda: first.stats.pending == len(handed_over), "every timer in host A's index")
            await _wait_all_committed(settings, handed_over, offsets)  # so host B cannot get them from .timers
        async with _timers_producer(settings) as out:
            # Armed while no processor runs: waiting on .timers while host B adopts (and rebuilds) the partitions.
            waiting = [_arm(run, 3, now + 8200) for run in runs]
            await _send(out, settings, *waiting)
        armed = handed_over + waiting
        assert _now_ms() < min(t.fire_at for t in armed), "host A was too slow to hand over before the fires"
        assert not host_b.exists()
        async with _running(settings, host_b) as second:
            # Adoption rebuilt both indexes from the changelog before the first record was processed.
            assert second.stats.restored == len(handed_over)
            await inbox.read_until(lambda seen: len(_fired(seen)) >= len(armed))
            fired = _fired(await inbox.drain())
            await _wait_until(lambda: second.stats.pending == 0, "the fired timers' deletes on host B")
        _check_fired_once_in_order(armed, fired)
        late = _record_lateness(fired, now)
        assert max(late) < 1000, late
        async with _running(settings, host_b) as third:  # the same host again: its index is current
            assert third.stats.restore_seconds == 0 and third.stats.pending == 0
    print(
        f"\nlateness after a move to a host with an empty state dir: {_percentiles(late)}, "
        f"rebuild of {len(handed_over)} timers took {second.stats.restore_seconds * 1000:.0f}ms"
    )


async def test_a_rebuild_resurrects_no_fired_or_cancelled_timer(settings: Settings, tmp_path: Path) -> None:
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    run = uuid.uuid4().hex
    topics = Topics(settings.topic_prefix)
    async with TopicReader(settings, topics.inbox, {run.encode()}) as inbox:
        async with _running(settings, host_a) as first, _timers_producer(settings) as out:
            now = _now_ms()
            fires, cancelled, moves = _arm(run, 0, now + 300), _arm(run, 1, now + 60_000), _arm(run, 2, now + 10_000)
            offsets = await _send(out, settings, fires, cancelled, moves)
            offsets += await _send(out, settings, _cancel(cancelled))
            await inbox.read_until(lambda seen: fires.timer_id in _fired_ids(seen))
            await _wait_until(lambda: first.stats.pending == 1, "only the moving timer left on host A")
            await _wait_all_committed(settings, [fires, cancelled, moves, cancelled], offsets)
        assert _now_ms() < moves.fire_at, "host A was too slow to hand over before the fire"
        async with _running(settings, host_b) as second:
            assert second.stats.restored == 1 and second.stats.pending == 1  # neither the fired nor the cancelled
            await inbox.read_until(lambda seen: moves.timer_id in _fired_ids(seen))
            await _wait_until(lambda: second.stats.pending == 0, "the moved timer's delete on host B")
        # Back on host A, whose file still holds the timer host B fired: stale, so rebuilt, so it stays fired.
        async with _running(settings, host_a) as again:
            assert again.stats.restore_seconds > 0 and again.stats.restored == 0 and again.stats.pending == 0
        fired = _fired(await inbox.drain())
    assert sorted(f.timer_id for f, _ in fired) == sorted([fires.timer_id, moves.timer_id])
    assert all(f.fired_at >= f.fire_at for f, _ in fired)


async def test_a_missing_changelog_is_created_compacted_and_a_wrong_one_refused(settings: Settings) -> None:
    from aiokafka.admin import NewTopic

    from streams import partition_counts, topic_config
    from streams.processors import ChangelogError, TimerChangelog

    missing, wrong = Topics(f"{settings.topic_prefix}-cl1"), Topics(f"{settings.topic_prefix}-cl2")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t.timers, num_partitions=3, replication_factor=1) for t in (missing, wrong)]
            + [NewTopic(wrong.name("timer-index"), num_partitions=3, replication_factor=1)]
        )
        await TimerChangelog(settings.bootstrap, missing, RECORDS).ensure_topic()
        counts = await partition_counts(admin, [missing.name("timer-index")])
        config = await topic_config(admin, missing.name("timer-index"))
        with pytest.raises(ChangelogError, match="must be compacted"):
            await TimerChangelog(settings.bootstrap, wrong, RECORDS).ensure_topic()
    finally:
        await admin.close()
    assert counts == {missing.name("timer-index"): 3}
    assert (config["cleanup.policy"], config["retention.ms"]) == ("compact", "-1")
