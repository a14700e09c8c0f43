"""A run's history for the client: the events Cassandra holds plus the tail of the history topic the
materializer has not written yet — a read costs O(the run + the materializer's lag), not O(the partition).

Invariant (coverage): the materializer commits an offset of ``<prefix>.history`` only once every record
before it is written to Cassandra. So with ``C`` its committed offset for the run's partition, read
*before* Cassandra, Cassandra holds every event of the run at offsets ``< C`` and a scan of ``[C, end)``
the rest. When Cassandra is unreachable, not migrated, or holds nothing for the run (a materializer writing
to another keyspace, a purged history), the whole partition is scanned as before.
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

import engine
from engine import HistoryEvent
from schemas import RecordCodec
from storage import CassandraConnection, CassandraTarget, RunStore, StorageError
from streams import _kafka
from streams._completions import CompletionsReader
from streams._config import Settings

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

    def __init__(self, settings: Settings, records: RecordCodec, reader: CompletionsReader, topic: str,
                 source: HistorySource = "cassandra") -> None:
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
        store = await self._open()
        start = None if store is None else await self._materialized(tp)
        stored: list[HistoryEvent] = []
        if store is not None and start is not None:
            try:
                stored = await asyncio.to_thread(store.events, run_id)
            except StorageError as exc:
                self._give_up(f"reading run {run_id} failed: {exc}")
        if not stored:  # nothing stored (or no Cassandra): the topic from its beginning is the truth
            start = None
        raws: list[bytes] = []
        key = run_id.encode()
        scanned = 0

        def visit(k: bytes, v: bytes) -> None:
            nonlocal scanned
            scanned += 1
            if k == key:
                raws.append(v)

        if start is None or start < await self._end_offset(tp):  # else Cassandra holds all there is
            await self._reader.scan(tp, None, visit, start=start or 0)
        self.last_read = HistoryRead("kafka" if start is None else "cassandra", start or 0, scanned)
        decoded = [cast(HistoryEvent, e) for e in map(self._records.decode, raws)
                   if isinstance(e, engine.HISTORY_EVENT_TYPES)]
        events = {event.seq: event for event in reversed(decoded)}  # a duplicate write (same seq): the first wins
        events.update((event.seq, event) for event in stored)  # what Cassandra holds wins over the tail
        return [events[seq] for seq in sorted(events)]

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.stop()
            self._probe = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        if self._conn is not None:
            await asyncio.to_thread(self._conn.close)
            self._conn, self._store = None, None

    async def _open(self) -> RunStore | None:
        if self._source == "kafka":
            return None
        async with self._lock:
            if self._store is None and time.monotonic() >= self._retry_at:
                host, port = self._settings.cassandra_host_port
                try:
                    self._conn = await asyncio.to_thread(CassandraConnection, CassandraTarget(host, port),
                                                         connect_timeout=3.0)
                    self._store = await asyncio.to_thread(RunStore, self._conn, self._settings.keyspace,
                                                          self._records)
                except StorageError as exc:
                    self._give_up(str(exc))
            return self._store

    async def _materialized(self, tp: TopicPartition) -> int | None:
        """The materializer group's committed offset of ``tp`` (None: it has committed nothing there)."""
        try:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.bootstrap)
                await admin.start()
                self._admin = admin
            offsets = await self._admin.list_consumer_group_offsets(
                f"{self._settings.topic_prefix}.materializer", partitions=[tp])
        except KafkaError as exc:
            log.info("materializer offsets unavailable (%r): reading the history topic", exc)
            return None
        meta = offsets.get(tp)
        return None if meta is None or meta.offset < 0 else int(meta.offset)

    async def _end_offset(self, tp: TopicPartition) -> int:
        if self._probe is None:
            probe = _kafka.consumer(self._settings.bootstrap)
            await probe.start()
            self._probe = probe
        return int((await self._probe.end_offsets([tp]))[tp])

    def _give_up(self, reason: str) -> None:
        log.info("run histories come from the history topic alone for %.0f s: %s", _RETRY_S, reason)
        self._retry_at = time.monotonic() + _RETRY_S
        if self._conn is not None:
            self._conn.close()
        self._conn, self._store = None, None
