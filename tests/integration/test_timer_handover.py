"""Timers that outlive their processor: a kill -9, a move to a host with an empty state dir (the index rebuilt
from the changelog topic), and a rebuild that resurrects no fired or cancelled timer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from engine.runtime import StartTimer
from streams import Settings, Topics
from streams.processors import TimerIndex
from support import eventually
from timer_support import (
    TopicReader,
    arm,
    cancel,
    check_fired_once_in_order,
    fired_ids,
    fired_records,
    now_ms,
    percentiles,
    record_lateness,
    run_id_on,
    running,
    send,
    timers_producer,
)

pytestmark = pytest.mark.integration


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
    async def committed() -> bool:
        return await _committed(settings, tp) > offset

    await eventually(committed, interval=0.1, what=f"offset {offset} of {tp} to be committed")


async def test_timer_survives_kill_9_of_the_processor(settings: Settings, tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "delay.log"
    run = run_id_on(0, settings.partitions)
    first = _spawn(settings, state, log)
    try:
        await eventually(
            lambda: log.read_text().count(" assigned: ") == settings.partitions,
            timeout=60,
            what="the subprocess to own every partition",
        )
        async with timers_producer(settings) as out:
            timer = arm(run, 0, now_ms() + 3000)
            (offset,) = await send(out, settings, timer)
        # Committed offset => the record is in SQLite and will not be re-read: a fire must come from there.
        await _wait_committed(settings, TopicPartition(Topics(settings.topic_prefix).timers, 0), offset)
        assert first.poll() is None and now_ms() < timer.fire_at
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    index = TimerIndex(state / settings.topic_prefix / "timers-0.sqlite3")
    assert [t.timer_id for t in index.earliest(10)] == [timer.timer_id]
    index.close()
    second = _spawn(settings, state, log)
    try:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {run.encode()}) as inbox:
            fired = fired_records(await inbox.read_until(lambda seen: bool(fired_records(seen)), timeout=90))
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
    runs = [run_id_on(p, settings.partitions) for p in range(settings.partitions)]
    topics = Topics(settings.topic_prefix)
    async with TopicReader(settings, topics.inbox, {r.encode() for r in runs}) as inbox:
        async with running(settings, host_a) as first, timers_producer(settings) as out:
            now = now_ms()
            handed_over = [
                arm(run, position, now + delay) for run in runs for position, delay in enumerate([9000, 8000, 8500])
            ]
            offsets = await send(out, settings, *handed_over)
            await eventually(lambda: first.stats.pending == len(handed_over), what="every timer in host A's index")
            await _wait_all_committed(settings, handed_over, offsets)  # so host B cannot get them from .timers
        async with timers_producer(settings) as out:
            # Armed while no processor runs: waiting on .timers while host B adopts (and rebuilds) the partitions.
            waiting = [arm(run, 3, now + 8200) for run in runs]
            await send(out, settings, *waiting)
        armed = handed_over + waiting
        assert now_ms() < min(t.fire_at for t in armed), "host A was too slow to hand over before the fires"
        assert not host_b.exists()
        async with running(settings, host_b) as second:
            # Adoption rebuilt both indexes from the changelog before the first record was processed.
            assert second.stats.restored == len(handed_over)
            await inbox.read_until(lambda seen: len(fired_records(seen)) >= len(armed))
            fired = fired_records(await inbox.drain())
            await eventually(lambda: second.stats.pending == 0, what="the fired timers' deletes on host B")
        check_fired_once_in_order(armed, fired)
        late = record_lateness(fired, now)
        assert max(late) < 1000, late
        async with running(settings, host_b) as third:  # the same host again: its index is current
            assert third.stats.restore_seconds == 0 and third.stats.pending == 0
    print(
        f"\nlateness after a move to a host with an empty state dir: {percentiles(late)}, "
        f"rebuild of {len(handed_over)} timers took {second.stats.restore_seconds * 1000:.0f}ms"
    )


async def test_a_rebuild_resurrects_no_fired_or_cancelled_timer(settings: Settings, tmp_path: Path) -> None:
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    run = uuid.uuid4().hex
    topics = Topics(settings.topic_prefix)
    async with TopicReader(settings, topics.inbox, {run.encode()}) as inbox:
        async with running(settings, host_a) as first, timers_producer(settings) as out:
            now = now_ms()
            fires, cancelled, moves = arm(run, 0, now + 300), arm(run, 1, now + 60_000), arm(run, 2, now + 10_000)
            offsets = await send(out, settings, fires, cancelled, moves)
            offsets += await send(out, settings, cancel(cancelled))
            await inbox.read_until(lambda seen: fires.timer_id in fired_ids(seen))
            await eventually(lambda: first.stats.pending == 1, what="only the moving timer left on host A")
            await _wait_all_committed(settings, [fires, cancelled, moves, cancelled], offsets)
        assert now_ms() < moves.fire_at, "host A was too slow to hand over before the fire"
        async with running(settings, host_b) as second:
            assert second.stats.restored == 1 and second.stats.pending == 1  # neither the fired nor the cancelled
            await inbox.read_until(lambda seen: moves.timer_id in fired_ids(seen))
            await eventually(lambda: second.stats.pending == 0, what="the moved timer's delete on host B")
        # Back on host A, whose file still holds the timer host B fired: stale, so rebuilt, so it stays fired.
        async with running(settings, host_a) as again:
            assert again.stats.restore_seconds > 0 and again.stats.restored == 0 and again.stats.pending == 0
        fired = fired_records(await inbox.drain())
    assert sorted(f.timer_id for f, _ in fired) == sorted([fires.timer_id, moves.timer_id])
    assert all(f.fired_at >= f.fire_at for f, _ in fired)
