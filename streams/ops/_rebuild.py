"""``kflow replay --rebuild``: re-materialize Cassandra from the Kafka history topic.

Reads every history partition from the beginning (or from the first record at or after ``--from``) up to
the end it had when the rebuild started, and writes the events with the materializer's writer. Writing
is idempotent (rows are keyed by run id and seq and stamped with the seq), so a rebuild over a complete
or partly complete keyspace converges to the same rows, and running it twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from engine import KflowError
from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent
from schemas import RecordCodec, SchemaError
from storage import CassandraConnection, HistoryWriter, migrate
from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget
from streams._settings import Settings
from streams._topics import Topics
from streams.kafka import admin, consumer


class RebuildError(KflowError):
    """The rebuild cannot start; the message says why in one line."""

    retryable = False


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did: events written, records skipped as unreadable, partitions read."""

    events: int
    skipped: int
    partitions: int
    total: int


async def rebuild(
    settings: Settings,
    *,
    from_ms: int | None = None,
    batch: int = 2000,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RebuildReport:
    """Write the history topic (from ``from_ms``, epoch ms, or the beginning) into Cassandra.

    Raises:
        RebuildError: the history topic does not exist.
        StorageError: Cassandra is unreachable or refused a write (rerunning is safe).
        TransportError: Kafka is unreachable or refused a request (rerunning is safe).
    """
    history = Topics(settings.topic_prefix).history
    with kafka_errors(settings.kafka_target(), f"reading {history}"):
        return await _rebuild(settings, from_ms, batch, progress)


async def _rebuild(
    settings: Settings, from_ms: int | None, batch: int, progress: Callable[[int, int], None]
) -> RebuildReport:
    target = settings.cassandra_target()
    records = RecordCodec(secret=settings.secret).keeping_unknown()  # as the materializer: store, never skip a class
    reader = consumer(settings.kafka_target(), max_poll_records=batch)
    try:  # start() inside: a consumer failing to start is closed too
        await reader.start()
        history = Topics(settings.topic_prefix).history
        tps = [TopicPartition(history, p) for p in range(await _partition_count(settings.kafka_target(), history))]
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        starts = await _seek_starts(reader, tps, from_ms, ends)
        total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        with CassandraConnection(target) as conn:
            migrate(conn, settings.keyspace)
            writer = HistoryWriter(conn, settings.keyspace, records)
            written, skipped, done = 0, 0, 0
            for tp in tps:
                while await reader.position(tp) < ends[tp]:
                    messages = [
                        m for m in (await reader.getmany(tp, timeout_ms=1000)).get(tp, []) if m.offset < ends[tp]
                    ]
                    events, blobs = _decode(records, messages)
                    await writer.write(events, blobs)
                    written, skipped = written + len(events), skipped + len(messages) - len(events)
                    done += len(messages)
                    progress(done, total)
    finally:
        await reader.stop()
    return RebuildReport(written, skipped, len(tps), total)


async def _partition_count(target: KafkaTarget, topic: str) -> int:
    client = admin(target)
    await client.start()
    try:
        # checked first: with auto.create.topics.enable, describing a missing topic creates it
        exists = topic in await client.list_topics()
        described = await client.describe_topics([topic]) if exists else []
    finally:
        await client.close()
    if not described or described[0].get("error_code") or not described[0].get("partitions"):
        raise RebuildError(f"there is no topic {topic} on {target.bootstrap} (KFLOW_TOPIC_PREFIX?)")
    return len(described[0]["partitions"])


async def _seek_starts(
    reader: AIOKafkaConsumer, tps: list[TopicPartition], from_ms: int | None, ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Position every partition at its beginning, or at the first record at or after ``from_ms``."""
    if from_ms is None:
        starts: dict[TopicPartition, int] = await reader.beginning_offsets(tps)
    else:
        found = await reader.offsets_for_times({tp: from_ms for tp in tps})
        starts = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}
    for tp, offset in starts.items():
        reader.seek(tp, offset)
    return starts


def _decode(records: RecordCodec, messages: list[ConsumerRecord]) -> tuple[list[HistoryEvent], list[bytes]]:
    events: list[HistoryEvent] = []
    blobs: list[bytes] = []
    for message in messages:
        value: bytes = message.value
        try:
            event = records.decode(value)
        except SchemaError:
            continue  # counted as skipped; the materializer logged it when it met it
        if isinstance(event, HISTORY_EVENT_TYPES):
            events.append(cast(HistoryEvent, event))
            blobs.append(value)
    return events, blobs
