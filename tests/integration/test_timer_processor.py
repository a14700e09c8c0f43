"""The timer processor against the real broker: timers armed on ``.timers`` fire on ``.inbox`` — once, not
early, in due order; cancelled ones never; malformed records go to the DLQ; the changelog topic is checked.
test_timer_handover.py has the tests that move partitions between processes and hosts."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from engine.runtime import TimerFired
from schemas import Codec
from streams import Settings, Topics
from support import eventually
from timer_support import (
    LATENESS_MS,
    RECORDS,
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


async def test_timers_fire_once_not_early_and_in_due_order(settings: Settings, tmp_path: Path) -> None:
    runs = [run_id_on(p, settings.partitions) for p in range(settings.partitions)]
    async with running(settings, tmp_path) as processor, timers_producer(settings) as out:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {r.encode() for r in runs}) as inbox:
            now = now_ms()
            armed = [
                arm(run, position, now + delay)
                for run in runs
                for position, delay in enumerate([1000, -1000, 500, 200])
            ]  # sent out of due order
            await send(out, settings, *armed)
            await inbox.read_until(lambda seen: len(fired_records(seen)) >= len(armed))
            fired = fired_records(await inbox.drain())
        check_fired_once_in_order(armed, fired)
        # The processor counts a fire once its acks are in and deletes it from the index after the changelog
        # tombstone is acknowledged: both come a moment after the inbox consumer can already see the record.
        await eventually(
            lambda: processor.stats.fired == len(armed) and processor.stats.pending == 0,
            what="the processor's counters",
        )
        assert processor.stats.fired == len(armed)  # and not more: no timer fired twice
    print(f"\nlateness (200ms..1s timers): {percentiles(record_lateness(fired, now))}")


async def test_cancelled_timer_never_fires(settings: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    async with running(settings, tmp_path) as processor, timers_producer(settings) as out:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {run.encode()}) as inbox:
            now = now_ms()
            persisted, same_batch, witness = (
                arm(run, 0, now + 1700),
                arm(run, 1, now + 1600),
                arm(run, 2, now + 2200),
            )
            await send(out, settings, persisted)
            await eventually(lambda: processor.stats.pending == 1, what="the first timer in the index")
            await send(out, settings, cancel(persisted), same_batch, cancel(same_batch), witness)
            await inbox.read_until(lambda seen: witness.timer_id in fired_ids(seen))
            fired = fired_records(await inbox.drain())
        await eventually(lambda: processor.stats.pending == 0, what="the last tombstone")  # no leftover for later tests
    assert [f.timer_id for f, _ in fired] == [witness.timer_id]


async def test_malformed_records_go_to_the_dlq_and_later_timers_still_fire(settings: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    topics = Topics(settings.topic_prefix)
    stray = TimerFired(run_id=run, timer_id="sleep:9:0", position=9, kind="sleep", fire_at=1, fired_at=2)
    async with running(settings, tmp_path) as processor, timers_producer(settings) as out:
        garbage = await out.send_and_wait(topics.timers, b"\x00not an avro record", key=run.encode())
        wrong_type = await out.send_and_wait(topics.timers, RECORDS.encode(stray), key=run.encode())
        later = arm(run, 0, now_ms() + 200)
        async with TopicReader(settings, topics.inbox, {run.encode()}) as inbox:
            await send(out, settings, later)
            await inbox.read_until(lambda seen: later.timer_id in fired_ids(seen))
        async with TopicReader(settings, topics.dlq, {run.encode()}) as dlq:
            seen = await dlq.read_until(lambda seen: len(seen) >= 2)
        await eventually(lambda: processor.stats.dead_lettered == 2, what="the dead-letter count")
        await eventually(lambda: processor.stats.pending == 0, what="the last tombstone")
    letters = {d.record["offset"]: d.record for d in (Codec().decode(s.value) for s in seen)}
    assert set(letters) == {garbage.offset, wrong_type.offset}
    for letter in letters.values():
        assert letter["topic"] == topics.timers and letter["key"] == run.encode() and letter["reason"]
    assert letters[garbage.offset]["value"] == b"\x00not an avro record"
    assert letters[garbage.offset]["error_type"] == "schemas._errors.SchemaError"
    assert "TimerFired" in str(letters[wrong_type.offset]["reason"])


async def test_more_timers_than_the_head_holds_all_fire_in_order(settings: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    rng = random.Random(5)
    async with running(settings, tmp_path, head_size=8) as processor, timers_producer(settings) as out:
        async with TopicReader(settings, Topics(settings.topic_prefix).inbox, {run.encode()}) as inbox:
            # Due 1.3 s to 2.5 s from now: both batches are in the index before the first one is due.
            now = now_ms()
            armed = [arm(run, position, now + 1000 + rng.randrange(300, 1500)) for position in range(50)]
            await send(out, settings, *armed[:25])  # a first batch fills the head past its bound ...
            await eventually(lambda: processor.stats.pending + processor.stats.fired >= 25, what="the first batch")
            await send(out, settings, *armed[25:])  # ... then arrivals land before and beyond its horizon
            await inbox.read_until(lambda seen: len(fired_records(seen)) >= len(armed))
            fired = fired_records(await inbox.drain())
        await eventually(lambda: processor.stats.pending == 0, what="the last tombstones")
        check_fired_once_in_order(armed, fired)
        late = record_lateness(fired, now)
    print(f"\nlateness (50 timers, head_size=8): {percentiles(late)}")
    print(f"lateness over the module so far: {percentiles(LATENESS_MS)}")


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
