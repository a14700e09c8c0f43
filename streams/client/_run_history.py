"""A run's history for the client: the events Cassandra holds plus the tail of the history topic the
materializer has not written yet — a read costs O(the run + the materializer's lag), not O(the partition).

Invariant (coverage): the materializer commits an offset of ``<prefix>.history`` only once every record
before it is written to Cassandra. So with ``C`` its committed offset for the run's partition, read
*before* Cassandra, Cassandra holds every event of the run at offsets ``< C`` and a scan of ``[C, end)``
the rest. Checked, not trusted: the merged history must number its events 1..n without a gap (a
materializer that skipped a record it could not decode, a keyspace rebuilt or not the materializer's);
otherwise, and when Cassandra is unreachable or not migrated, the whole partition is scanned as before.
A gap at the very end (a run's newest events missing from Cassandra below ``C``) cannot be seen this way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Final, Literal, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from engine import RunStatus, runtime
from engine.runtime import HistoryEvent
from schemas import RecordCodec
from storage import CassandraConnection, RunStore, StorageError
from streams import kafka
from streams._settings import Settings
from streams.client._completions import CompletionsReader

log = logging.getLogger(__name__)

_RETRY_S: Final = 30.0  # after Cassandra failed, the topic alone is read this long before trying again

HistorySource = Literal["cassandra", "kafka"]


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """How the last read went: ``source`` "cassandra" (stored events + the topic from ``scanned_from``) or
    "kafka" (the whole partition); ``scanned`` records of the topic were visited."""

    source: HistorySource
    scanned_from: int
    scanned: int


class RunHistory:
    """Reads runs' histories for one client; ``source="kafka"`` never touches Cassandra."""

    def __init__(
        self,
        settings: Settings,
        records: RecordCodec,
        reader: CompletionsReader,
        topic: str,
        source: HistorySource = "cassandra",
    ) -> None:
        self._settings, self._records, self._reader, self._topic = settings, records, reader, topic
        self._source = source
        self._lock = asyncio.Lock()
        self._conn: CassandraConnection | None = None
        self._store: RunStore | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._probe: AIOKafkaConsumer | None = None  # end offsets only: it is never assigned a partition
        self._retry_at = 0.0
        self.last_read: HistoryRead | None = None

    async def events(self, run_id: str, partition: int) -> list[HistoryEvent]:
        """The run's history events ordered by seq (empty for an unknown run)."""
        tp = TopicPartition(self._topic, partition)
        store = await self.store()
        start = None if store is None else await self._materialized(tp)
        stored: list[HistoryEvent] = []
        if store is not None and start is not None:
            try:
                stored = await asyncio.to_thread(store.events, run_id)
            except StorageError as exc:  # the driver reconnects by itself: this read falls back
                log.info("reading run %s from Cassandra failed (%s): reading the history topic", run_id, exc)
                start = None
        if start is not None:
            events, scanned = await self._merged(run_id, tp, start, stored)
            if _complete(events):
                self.last_read = HistoryRead("cassandra", start, scanned)
                return events
            if stored:  # a gap: e.g. a materializer that could not decode a record, or another keyspace
                log.info("run %s: Cassandra and the topic after offset %d leave a gap: reading it whole", run_id, start)
        events, scanned = await self._merged(run_id, tp, 0, [])
        self.last_read = HistoryRead("kafka", 0, scanned)
        return events

    async def chain_end(self, run_id: str) -> str:
        """The newest run of ``run_id``'s continue-as-new chain that Cassandra knows (``run_id`` when it
        knows no successor, or with ``source="kafka"``). Safe to skip to: a link, once written, never changes."""
        store = await self.store()
        if store is None:
            return run_id
        try:
            return await asyncio.to_thread(_follow_links, store, run_id)
        except StorageError as exc:
            log.info("following the chain of run %s in Cassandra failed (%s)", run_id, exc)
            return run_id

    async def _merged(
        self, run_id: str, tp: TopicPartition, start: int, stored: list[HistoryEvent]
    ) -> tuple[list[HistoryEvent], int]:
        """``stored`` plus the run's events at offsets >= ``start`` of ``tp``, by seq; and records visited."""
        raws: list[bytes] = []
        key = run_id.encode()
        scanned = 0

        def visit(k: bytes, v: bytes) -> None:
            nonlocal scanned
            scanned += 1
            if k == key:
                raws.append(v)

        if start == 0 or start < await self._end_offset(tp):  # else Cassandra holds all there is
            await self._reader.scan(tp, None, visit, start=start)
        decoded = [
            cast(HistoryEvent, e) for e in map(self._records.decode, raws) if isinstance(e, runtime.HISTORY_EVENT_TYPES)
        ]
        events = {event.seq: event for event in reversed(decoded)}  # a duplicate write (same seq): the first wins
        events.update((event.seq, event) for event in stored)  # what Cassandra holds wins over the tail
        return [events[seq] for seq in sorted(events)], scanned

    async def close(self) -> None:
        async with self._lock:
            if self._probe is not None:
                await self._probe.stop()
                self._probe = None
            if self._admin is not None:
                await self._admin.close()
                self._admin = None
            if self._conn is not None:
                await asyncio.to_thread(self._conn.close)
                self._conn, self._store = None, None

    async def store(self, *, required: bool = False) -> RunStore | None:
        """The Cassandra store, connected on first use; None with ``source="kafka"`` and for 30 s after a failed
        connection (reads then come from the topic alone). ``required`` (queries only Cassandra answers, such
        as listings): connected whatever the source, and a failure raised.

        Raises:
            StorageError: only with ``required``: Cassandra unreachable, or the keyspace not migrated.
        """
        if self._source == "kafka" and not required:
            return None
        async with self._lock:
            if self._store is None and (required or time.monotonic() >= self._retry_at):
                try:
                    self._conn = await asyncio.to_thread(
                        CassandraConnection, self._settings.cassandra_target(), connect_timeout=3.0
                    )
                    self._store = await asyncio.to_thread(RunStore, self._conn, self._settings.keyspace, self._records)
                except StorageError as exc:
                    self._retry_at = time.monotonic() + _RETRY_S
                    if self._conn is not None:
                        await asyncio.to_thread(self._conn.close)
                    self._conn, self._store = None, None
                    if required:
                        raise
                    log.info("run histories come from the history topic alone for %.0f s: %s", _RETRY_S, exc)
            return self._store

    async def _materialized(self, tp: TopicPartition) -> int | None:
        """The materializer group's committed offset of ``tp`` (None: it has committed nothing there)."""
        try:
            async with self._lock:
                if self._admin is None:
                    admin = kafka.admin(self._settings.kafka_target())
                    try:
                        await admin.start()
                    except BaseException:
                        await admin.close()
                        raise
                    self._admin = admin
                admin = self._admin
            offsets = await admin.list_consumer_group_offsets(
                f"{self._settings.topic_prefix}.materializer", partitions=[tp]
            )
        except KafkaError as exc:
            log.info("materializer offsets unavailable (%r): reading the history topic", exc)
            return None
        meta = offsets.get(tp)
        return None if meta is None or meta.offset < 0 else int(meta.offset)

    async def _end_offset(self, tp: TopicPartition) -> int:
        async with self._lock:
            if self._probe is None:
                probe = kafka.consumer(self._settings.kafka_target())
                try:
                    await probe.start()
                except BaseException:
                    await probe.stop()
                    raise
                self._probe = probe
            probe = self._probe
        return int((await probe.end_offsets([tp]))[tp])


def _follow_links(store: RunStore, run_id: str, limit: int = 1_000_000) -> str:
    current = run_id
    for _ in range(limit):  # bounded: a damaged row pointing back must not loop forever
        row = store.get_run(current)
        if row is None or row.status != RunStatus.CONTINUED_AS_NEW or not row.next_run_id:
            break
        current = row.next_run_id
    return current


def _complete(events: list[HistoryEvent]) -> bool:
    """A whole history so far: seqs 1..n without a gap (the engine numbers a run's events so)."""
    return bool(events) and all(event.seq == i for i, event in enumerate(events, start=1))
