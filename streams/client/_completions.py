"""How a client learns that runs finished: one tail of ``<prefix>.completions`` and short-lived partition scans."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from streams import kafka
from streams._errors import kafka_errors
from streams._headers import DEAD_LETTERED, header
from streams._kafka_target import KafkaTarget
from streams.kafka import partition_for

log = logging.getLogger(__name__)

_RECENT_RESULTS: Final = 10_000  # raw RunFinished records remembered, least recently used dropped first
_OWN_RUNS: Final = 100_000  # runs started by this client, whose completion is kept until claimed
CLIENT_CACHE_BYTES: Final = 64 * 1024 * 1024
"""Default bound of the completions a client keeps in memory (``KFLOW_CLIENT_CACHE_BYTES``)."""
_SCAN_STALL_S: Final = 30.0  # a partition scan that makes no progress this long fails


class CompletionsReader:
    """The client's consumers: one tail of ``<prefix>.completions``, and a short-lived one per partition scan.

    Invariant (coverage): a waiter is registered before the tail's next offsets are read, so the tail
    hands it every later record and a scan of ``[beginning, next offset)`` of its partition every earlier
    one. Runs started here after the tail was positioned need no scan: ``_own`` keeps their completions.

    A scan prefers a run's real completion to a provisional one (header ``DEAD_LETTERED``: its start was
    dead-lettered, then maybe redriven after a fix): it hands a waiter the provisional one only when nothing
    else of that run is in its range. The tail hands over what arrives, in order (and remembers the latest).
    """

    def __init__(self, bootstrap: KafkaTarget | str, completions: str, max_bytes: int = CLIENT_CACHE_BYTES) -> None:
        self._target, self._topic = KafkaTarget.of(bootstrap), completions
        self._tail_consumer: AIOKafkaConsumer | None = None
        self._scan_lock = asyncio.Lock()
        self._tail: asyncio.Task[None] | None = None
        self._next: dict[int, int] = {}
        self._own: OrderedDict[str, bytes | None] = OrderedDict()
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[bytes]]] = {}
        self._scanned: set[str] = set()  # waited-for runs whose completion a scan (not the tail) found
        self._held: dict[str, bytes] = {}  # a provisional completion a scan found, given if nothing later is
        self.evictions = 0  # results dropped from ``_recent`` or ``_own`` (and tail reopenings) so far
        # Bytes of the completions kept (``_recent`` and ``_own``): past ``max_bytes`` the least recently used are
        # dropped (a run whose completion was dropped is found by a scan instead: slower, still correct).
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self.scans = 0  # partition scans started so far

    async def open(self, partitions: int) -> None:
        """Position the tail at the current end of every partition (it fetches from the first wait on).

        Raises the Kafka client's errors as they are (``Client.connect``, the caller, wraps them).
        """
        self.held_bytes -= sum(len(raw) for raw in self._own.values() if raw is not None)
        self._own.clear()  # a reopened tail may have missed them: scans find them
        self.evictions += 1  # and a chain followed across the reopening is not "after the tail's start"
        self._tail_consumer = consumer = kafka.consumer(self._target)
        await consumer.start()
        tps = [TopicPartition(self._topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp, offset in (await consumer.end_offsets(tps)).items():
            consumer.seek(tp, offset)
            self._next[tp.partition] = offset

    async def close(self) -> None:
        """Stop both consumers; pending waits are cancelled."""
        if self._tail is not None:
            self._tail.cancel()
            await asyncio.gather(self._tail, return_exceptions=True)
        for future in (f for futures in self._waiters.values() for f in futures):
            future.cancel()
        if self._tail_consumer is not None:
            await self._tail_consumer.stop()
        self._tail_consumer = None

    def expect(self, run_id: str) -> None:
        """Note a run this client is starting, so its completion is kept until ``wait`` claims it."""
        self._own[run_id] = None
        while len(self._own) > _OWN_RUNS:  # a forgotten run is found by a scan instead (slower, still correct)
            self._own.popitem(last=False)

    async def wait(self, run_id: str, deadline: float | None, *, tailed_since: int | None = None) -> tuple[bytes, bool]:
        """The raw ``RunFinished`` of ``run_id`` and whether the tail (not a scan) delivered it; raises
        TimeoutError at ``deadline`` (loop time).

        ``tailed_since``: the run's completion is known to come after the tail's start (it is the successor of
        a run whose completion the tail delivered, written after it); with ``evictions`` still at that value
        it is either among the recent results or still to come, so no scan is needed.
        """
        if self._own.get(run_id) is not None:  # claimed: from now on kept among the recent results
            self._remember(run_id, cast(bytes, self._take_own(run_id)))
        if (raw := self._recent.get(run_id)) is not None:
            return raw, True  # only the tail (directly or through _own) fills _recent
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._waiters.setdefault(run_id, []).append(future)
        if self._tail is None or self._tail.done():
            self._tail = asyncio.create_task(self._follow(), name="kflow-client-completions")
        scan = None
        if run_id not in self._own and (tailed_since is None or tailed_since != self.evictions):
            # the tail's next offset is read right after registering the waiter
            partition = partition_for(run_id.encode(), len(self._next))
            tp = TopicPartition(self._topic, partition)
            scan = asyncio.create_task(self._scan_records(tp, self._next[partition], self._deliver_waited, 0))
        pending: set[asyncio.Future[Any]] = {future} if scan is None else {future, scan}
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if future in done:
                    return future.result(), run_id not in self._scanned
                if not done:
                    raise TimeoutError(f"run {run_id} did not finish within the timeout")
                assert scan is not None
                scan.result()  # a failed scan raises; a finished one found nothing older than the tail
                pending.discard(scan)
                held = self._held.pop(run_id, None)
                if held is not None:  # only a provisional completion: the run's latest word so far
                    return held, False
        finally:
            futures = [f for f in self._waiters.pop(run_id, []) if f is not future]
            if futures:
                self._waiters[run_id] = futures
            else:
                self._scanned.discard(run_id)
                self._held.pop(run_id, None)
            if scan is not None:
                scan.cancel()

    async def scan(
        self, tp: TopicPartition, stop: int | None, visit: Callable[[bytes, bytes], None], *, start: int = 0
    ) -> None:
        """Call ``visit(key, value)`` for every keyed record in ``[start, stop)`` (``stop`` None: the current
        end; ``start`` below the log's first offset: from that).

        Raises:
            TransportError: Kafka is unreachable or refused a request.
            TimeoutError: the scan made no progress for 30 s.
        """
        await self._scan_records(tp, stop, lambda record: visit(cast(bytes, record.key), record.value), start)

    async def _scan_records(
        self, tp: TopicPartition, stop: int | None, visit: Callable[[ConsumerRecord[bytes, bytes]], None], start: int
    ) -> None:
        self.scans += 1
        with kafka_errors(self._target, f"scanning {tp.topic}[{tp.partition}]"):
            await self._scan(tp, stop, visit, start)

    async def _scan(
        self, tp: TopicPartition, stop: int | None, visit: Callable[[ConsumerRecord[bytes, bytes]], None], start: int
    ) -> None:
        async with self._scan_lock:
            # A consumer per scan: reusing one across scans (assign / unsubscribe) raced with aiokafka's
            # offset-reset bookkeeping when a scan was cancelled mid-seek.
            consumer = kafka.consumer(self._target)
            try:
                await consumer.start()  # inside: a scan cancelled while starting still closes the consumer
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                if start > 0:
                    consumer.seek(tp, max(start, await consumer.position(tp)))
                end = (await consumer.end_offsets([tp]))[tp] if stop is None else stop
                stalled_at = time.monotonic() + _SCAN_STALL_S
                while (position := await consumer.position(tp)) < end:
                    for message in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                        if message.key is not None:
                            visit(message)
                    if await consumer.position(tp) != position:
                        stalled_at = time.monotonic() + _SCAN_STALL_S
                    elif time.monotonic() > stalled_at:
                        raise TimeoutError(f"scan of {tp.topic}[{tp.partition}] stalled at offset {position}")
            finally:
                await consumer.stop()

    def _deliver_waited(self, record: ConsumerRecord[bytes, bytes]) -> None:
        # Resolves the waiters only: remembering every scanned result could evict the next link of a chain
        # being followed, which would then need a scan of its own, and so on.
        run_id = cast(bytes, record.key).decode("utf-8", "replace")
        if run_id not in self._waiters:
            return
        if header(record.headers, DEAD_LETTERED) is not None:  # provisional: a later one of the run wins
            self._held[run_id] = record.value
            return
        self._held.pop(run_id, None)
        value = record.value
        waiters = self._waiters.pop(run_id, [])
        if waiters:
            self._scanned.add(run_id)
        for future in waiters:
            if not future.done():
                future.set_result(value)

    async def _follow(self) -> None:
        consumer = self._tail_consumer
        assert consumer is not None
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("completions tail: %r (retrying)", exc)
                await asyncio.sleep(0.5)
                continue
            for tp, messages in batch.items():
                for message in messages:
                    if message.key is not None:
                        self._deliver(message.key, message.value)
                if messages:
                    self._next[tp.partition] = messages[-1].offset + 1

    def _deliver(self, key: bytes, value: bytes) -> None:
        run_id = key.decode("utf-8", "replace")
        if run_id in self._own and run_id not in self._waiters:
            self._take_own(run_id)
            self._own[run_id] = value  # kept until claimed
            self.held_bytes += len(value)
            self._shrink()
        else:
            self._take_own(run_id)
            self._remember(run_id, value)
        for future in self._waiters.pop(run_id, []):
            if not future.done():
                future.set_result(value)

    def _remember(self, run_id: str, value: bytes) -> None:
        self.held_bytes += len(value) - len(self._recent.get(run_id, b""))
        self._recent[run_id] = value
        self._recent.move_to_end(run_id)
        while len(self._recent) > _RECENT_RESULTS:
            self.held_bytes -= len(self._recent.popitem(last=False)[1])
            self.evictions += 1
        self._shrink()

    def _take_own(self, run_id: str) -> bytes | None:
        raw = self._own.pop(run_id, None)
        self.held_bytes -= 0 if raw is None else len(raw)
        return raw

    def _shrink(self) -> None:
        """Drop the least recently used recent results, then the oldest unclaimed ones, until ``max_bytes`` holds."""
        while self.held_bytes > self.max_bytes and self._recent:
            self.held_bytes -= len(self._recent.popitem(last=False)[1])
            self.evictions += 1
        if self.held_bytes > self.max_bytes:
            for run_id in [r for r, raw in self._own.items() if raw is not None]:
                self._take_own(run_id)
                self.evictions += 1  # ``wait`` scans for it again (``tailed_since`` no longer vouches)
                if self.held_bytes <= self.max_bytes:
                    break
