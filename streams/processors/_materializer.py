"""The history materializer: consumes ``<prefix>.history`` and writes it into Cassandra.

Kafka's history topic is the source of truth; Cassandra is a view of it. Each fetched batch is written
with ``storage.HistoryWriter`` and its offsets are committed only once every write succeeded.

Invariant: an offset is committed only after every event before it is in Cassandra. When Cassandra is
down the same batch is retried (exponential back-off capped at ``max_backoff``) and nothing is
committed past it, so an outage delays materialization but loses nothing; the history topic keeps
filling meanwhile and is caught up afterwards. Writes are idempotent (see ``storage._history``), so a
batch written twice — a retry after a partial failure, a redelivery after a crash or a rebalance — is
harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent
from schemas import RecordCodec, SchemaError
from storage import CassandraConnection, HistoryWriter, StorageError, migrate
from streams._partition_check import check_partition_counts
from streams._schema_topic import join_schema_topic
from streams._settings import Settings
from streams._topics import Topics
from streams.kafka import close_consumer, consumer
from streams.processors._serve import ProgressWatch, supervise

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 15.0
"""Longest an offset commit may take (past it the loop fails and the consumer is rebuilt)."""

RECONNECT_AFTER_S = 10.0
"""After failing this long, each retry also replaces the Cassandra connection with a fresh one.

The driver reconnects on its own, but with a back-off that grows to minutes; a fresh connection
resumes within one retry once Cassandra answers again."""


@dataclass(slots=True)
class MaterializerStats:
    """Counters of one materializer.

    Attributes:
        events_written: history events written to Cassandra (a batch written again counts again).
        batches: batches written (and then committed).
        retries: failed write attempts that were retried.
        connections: Cassandra connections opened (the first one included).
        undecodable: history records skipped because they are not decodable history events.
        last_event_timestamp: newest ``timestamp`` (epoch ms) of an event written, None before the first.
    """

    events_written: int = 0
    batches: int = 0
    retries: int = 0
    connections: int = 0
    undecodable: int = 0
    last_event_timestamp: int | None = None


class HistoryMaterializer:
    """Materializes ``<prefix>.history`` into the Cassandra keyspace ``settings.keyspace``.

    Consumer group ``<prefix>.materializer`` (read-committed, manual commits); several materializers
    share the partitions. ``start`` connects and migrates the keyspace in the background: a Cassandra
    that is down at start is waited for like one that goes down later.

    Args:
        settings: servers, topic prefix, keyspace (``settings.secret`` decodes cloudpickle payloads).
        records: codec of the history records (default: ``RecordCodec(secret=settings.secret)``); it decodes
            payload classes this process does not allow to ``schemas.UnresolvedValue`` (``keeping_unknown``):
            the materializer only stores values, and must not skip an event for lack of a class.
        batch_size: most records fetched and written per batch.
        max_backoff: longest wait, in seconds, between two attempts at a failing batch.
        concurrency: most Cassandra requests in flight.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        records: RecordCodec | None = None,
        batch_size: int = 2000,
        max_backoff: float = 5.0,
        concurrency: int = 64,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.group = f"{settings.topic_prefix}.materializer"
        self.records = (records or RecordCodec(secret=settings.secret)).keeping_unknown()
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.stats = MaterializerStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: CassandraConnection | None = None
        self._writer: HistoryWriter | None = None
        self._unwritten: dict[int, int] = {}  # partition -> first offset of the batch being written
        self._committed: dict[TopicPartition, int] = {}  # what this member last committed (or found)
        self._watch = ProgressWatch()
        self.name = "materializer"
        self.storage_error: str | None = None  # why Cassandra does not answer now (None: it does, or not tried)

    async def start(self) -> None:
        """Join the consumer group and start materializing in the background."""
        await join_schema_topic(self.settings.kafka_target(), self.topics, self.records.codec)
        await check_partition_counts(self.settings.kafka_target(), self.topics, "the materializer")
        self._consumer = consumer(
            self.settings.kafka_target(),
            group_id=self.group,
            instance_id=self.settings.instance_id,
            max_poll_records=self.batch_size,
        )
        self._consumer.subscribe([self.topics.history], listener=_Listener(self))
        self._watch.reset()
        await self._consumer.start()
        self._task = asyncio.create_task(self._loop(), name="kflow-materializer")

    async def stop(self) -> None:
        """Abandon the batch in flight (it was not committed: it is written again later), leave the group."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await close_consumer(self._consumer)
            self._consumer = None
        await self._disconnect()

    def loops(self) -> Collection[asyncio.Task[None]]:
        """The materializing loop (while started)."""
        return [] if self._task is None else [self._task]

    async def readiness(self) -> str | None:
        """Why the materializer is not ready (Cassandra not answering), or None."""
        return self.storage_error

    async def health(self) -> str | None:
        """A reason to rebuild the Kafka consumer (see ``streams.processors._serve``), or None."""
        return None if self._consumer is None else await self._watch.check(self._consumer, self.group)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, reconnecting through broker faults (``streams.processors._serve``)."""
        await supervise(self, stop)

    async def lag(self) -> dict[int, int]:
        """Events not yet in Cassandra, per assigned history partition: end offset − materialized offset.

        The end is the last stable offset (read-committed), the materialized offset the start of the
        batch being written, or else the consumer's position (which steps over transaction markers).
        """
        kafka = self._kafka
        assigned = sorted(kafka.assignment(), key=lambda tp: tp.partition)
        if not assigned:
            return {}
        ends = await kafka.end_offsets(assigned)
        lags: dict[int, int] = {}
        for tp in assigned:
            done = self._unwritten.get(tp.partition)
            try:
                if done is None:
                    done = await kafka.position(tp)
            except KafkaError:  # revoked meanwhile
                continue
            lags[tp.partition] = max(0, ends[tp] - done)
        return lags

    @property
    def _kafka(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("HistoryMaterializer.start() was not called")
        return self._consumer

    async def _loop(self) -> None:
        await self._retrying(self._connected, "connect to Cassandra")
        while True:
            batches = await self._kafka.getmany(timeout_ms=500, max_records=self.batch_size)
            self._watch.polled()
            if batches:
                await self._materialize(batches)
            else:
                async with asyncio.timeout(COMMIT_TIMEOUT_S):  # committed() and position() wait without limit
                    await self._commit_markers()

    async def _materialize(self, batches: dict[TopicPartition, list[Any]]) -> None:
        self._unwritten.update({tp.partition: messages[0].offset for tp, messages in batches.items()})
        try:
            events, blobs = self._decode(batches)
            if events:
                await self._retrying(lambda: self._write(events, blobs), f"write {len(events)} events")
            await self._commit({tp: messages[-1].offset + 1 for tp, messages in batches.items()})
        finally:
            for tp in batches:
                self._unwritten.pop(tp.partition, None)
        self.stats.batches += 1

    def _decode(self, batches: dict[TopicPartition, list[Any]]) -> tuple[list[HistoryEvent], list[bytes]]:
        events: list[HistoryEvent] = []
        blobs: list[bytes] = []
        for tp, messages in batches.items():
            for message in messages:
                event = self._event(tp, message.offset, message.value)
                if event is not None:
                    events.append(event)
                    blobs.append(message.value)
        return events, blobs

    def _event(self, tp: TopicPartition, offset: int, value: bytes | None) -> HistoryEvent | None:
        """The history event in ``value``; None (logged, counted) for what cannot be materialized."""
        try:
            if value is None:
                raise SchemaError("a record without a value")
            record = self.records.decode(value)
            if not isinstance(record, HISTORY_EVENT_TYPES):
                raise SchemaError(f"a {type(record).__name__} record is not a history event")
        except SchemaError as exc:
            self.stats.undecodable += 1
            log.error("history record %s@%d cannot be materialized, skipped: %s", tp, offset, exc)
            return None
        return cast(HistoryEvent, record)

    async def _write(self, events: Sequence[HistoryEvent], blobs: Sequence[bytes]) -> None:
        writer = await self._connected()
        await writer.write(events, blobs)
        self.stats.events_written += len(events)
        newest = max(event.timestamp for event in events)
        if self.stats.last_event_timestamp is None or newest > self.stats.last_event_timestamp:
            self.stats.last_event_timestamp = newest

    async def _commit(self, written: dict[TopicPartition, int]) -> None:
        kafka = self._kafka
        offsets: dict[TopicPartition, int] = {}
        assigned = kafka.assignment()
        for tp, offset in written.items():
            if tp not in assigned:
                continue  # revoked meanwhile: written anyway, the new owner may write it again
            try:
                # The position may already be past a transaction marker that follows the batch.
                offsets[tp] = max(offset, await kafka.position(tp))
            except KafkaError:
                continue
        if not offsets:
            return
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_S):  # aiokafka retries a commit without limit
                await kafka.commit(offsets)
        except KafkaError as exc:
            # Lost the partitions meanwhile: their new owner rewrites from the last commit (idempotent).
            log.warning("committing materialized offsets %s failed: %r", offsets, exc)
            return
        self._committed.update(offsets)

    async def _commit_markers(self) -> None:
        """Commit positions that moved over transaction markers alone, so the committed lag reaches 0."""
        kafka = self._kafka
        moved: dict[TopicPartition, int] = {}
        for tp in kafka.assignment():
            try:
                if tp not in self._committed:
                    self._committed[tp] = await kafka.committed(tp) or 0
                position = await kafka.position(tp)
            except KafkaError:
                continue
            if position > self._committed[tp]:
                moved[tp] = position
        if moved:
            await self._commit(moved)

    async def _retrying(self, action: Callable[[], Awaitable[object]], what: str) -> None:
        """Run ``action`` until it succeeds, backing off on StorageError; reconnect if it keeps failing."""
        delay, failing_since = 0.1, None
        while True:
            try:
                await action()
                self.storage_error = None
                if failing_since is not None:
                    log.info("%s: succeeded again after %.1fs", what, time.monotonic() - failing_since)
                return
            except StorageError as exc:
                self._watch.polled()  # alive, waiting for Cassandra on purpose: a Kafka rebuild would not help
                now = time.monotonic()
                failing_since = failing_since or now
                self.stats.retries += 1
                self.storage_error = f"{what} failed: {exc}"
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
                if now - failing_since >= RECONNECT_AFTER_S:
                    await self._disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _connected(self) -> HistoryWriter:
        """The writer, after (re)connecting and migrating the keyspace when there is none."""
        if self._writer is not None:
            return self._writer
        target = self.settings.cassandra_target()
        await _probe(target.contact_points)
        conn = await asyncio.to_thread(CassandraConnection, target)
        try:
            applied = await asyncio.to_thread(migrate, conn, self.settings.keyspace)
            writer = await asyncio.to_thread(
                HistoryWriter, conn, self.settings.keyspace, self.records, concurrency=self.concurrency
            )
        except BaseException:
            await asyncio.to_thread(conn.close)
            raise
        if applied:
            log.info("keyspace %s migrated to versions %s", self.settings.keyspace, applied)
        self._conn, self._writer = conn, writer
        self.stats.connections += 1
        return writer

    async def _disconnect(self) -> None:
        conn, self._conn, self._writer = self._conn, None, None
        if conn is not None:
            await asyncio.to_thread(conn.close)


async def _probe(points: list[tuple[str, int]], timeout: float = 2.0) -> None:
    """Fail fast, and quietly, while nothing listens on any contact point (the driver logs a traceback per try)."""
    failures: list[OSError] = []  # TimeoutError is an OSError
    for host, port in points:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (TimeoutError, OSError) as exc:
            failures.append(exc)
            continue
        writer.close()
        return
    where = ",".join(f"{host}:{port}" for host, port in points)
    raise StorageError(f"Cassandra at {where} is unreachable: {'; '.join(map(repr, failures))}") from failures[-1]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, materializer: HistoryMaterializer) -> None:
        self._materializer = materializer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to hand over: every written batch is committed at once, unwritten ones are re-read.
        for tp in revoked:
            self._materializer._committed.pop(tp, None)
        log.info("materializer: history partitions revoked %s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("materializer: history partitions assigned %s", sorted(tp.partition for tp in assigned))
