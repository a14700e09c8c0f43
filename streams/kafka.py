"""Kafka clients with the settings kflow relies on, chosen rather than inherited (docs/notes.md #4).

- producers: acks=all + idempotence (no duplicates from producer retries), linger 0 (latency first;
  batches still form under load because sends queue while a request is in flight);
- transactional producers: a 1 ms retry back-off, because right after a commit the coordinator may answer
  CONCURRENT_TRANSACTIONS (the previous transaction's markers are still being written, KAFKA-5477) and the default
  100 ms back-off would become every hop's latency; 5 ms made 9 % of the orchestrator's transactions take 5-10 ms
  and the 1-step p99 3.4x its p50 (``python -m bench.durable --hops``). aiokafka waits a fixed 20 ms instead when
  the refused request is a transaction's first AddPartitionsToTxn (``BACKOFF_OVERRIDE``): set to the same 1 ms here;
- consumers: read_committed (never act on output of an aborted transaction), manual commits;
- admin clients: a request timeout of 15 s.

Every client kflow makes comes from these factories, so every one connects as its ``KafkaTarget`` says (bootstrap
servers, TLS, SASL: ``Settings.kafka_target()``); a plain string is bootstrap servers over PLAINTEXT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2
from aiokafka.producer import sender as _aiokafka_sender
from aiokafka.structs import ConsumerRecord

from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget
from streams._topic_state import InternalTopicError

log = logging.getLogger(__name__)

TXN_RETRY_BACKOFF_MS = 1
"""Back-off of a transactional producer's retries after CONCURRENT_TRANSACTIONS (module docstring)."""
_aiokafka_sender.BACKOFF_OVERRIDE = TXN_RETRY_BACKOFF_MS / 1000  # tests/unit/streams/test_txn_backoff.py pins it

MAX_MESSAGE_BYTES = 1_000_000
"""Largest record kflow produces (the broker's default message.max.bytes is 1 MiB)."""


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client) picks for ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def producer(target: KafkaTarget | str, *, transactional_id: str | None = None, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (transactional when ``transactional_id`` is given); start() it before use.

    Raises:
        TransportError: a TLS file of ``target`` cannot be used.
    """
    options: dict[str, Any] = {
        **KafkaTarget.of(target).client_options(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
        "max_request_size": MAX_MESSAGE_BYTES + 64_000,
        "request_timeout_ms": 30_000,
    }
    if transactional_id is not None:
        options.update(transactional_id=transactional_id, retry_backoff_ms=TXN_RETRY_BACKOFF_MS)
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(
    target: KafkaTarget | str,
    *topics: str,
    group_id: str | None = None,
    instance_id: str | None = None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A read-committed consumer with manual commits, starting at the earliest offset of a new group.

    ``instance_id`` makes it a static member of ``group_id`` (KIP-345, ``KFLOW_INSTANCE_ID``): the group keeps its
    partitions for it through a restart within the session timeout, with no rebalance; it does not leave the group
    when closed (aiokafka has no LeaveGroup for static members), so they move to others after the session timeout.

    Raises:
        TransportError: a TLS file of ``target`` cannot be used.
    """
    options: dict[str, Any] = {
        **KafkaTarget.of(target).client_options(),
        "group_id": group_id,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 100,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
        "max_poll_records": 500,
    }
    if group_id is not None and instance_id is not None:
        options["group_instance_id"] = instance_id
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def admin(target: KafkaTarget | str, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client (request timeout 15 s unless overridden); start() it before use, close() it after.

    Raises:
        TransportError: a TLS file of ``target`` cannot be used.
    """
    options: dict[str, Any] = {**KafkaTarget.of(target).client_options(), "request_timeout_ms": 15_000}
    options.update(overrides)
    return AIOKafkaAdminClient(**options)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition: its end offset, a consumer group's committed offset there, and the difference."""

    partition: int
    end: int
    committed: int | None
    lag: int


async def committed_lag(bootstrap: KafkaTarget | str, topic: str, group: str) -> list[PartitionLag]:
    """End offsets of ``topic`` minus ``group``'s committed offsets (the partition's start when none): how far
    the group is behind, per partition (``bootstrap``: a ``KafkaTarget``, or bootstrap servers over PLAINTEXT).

    Raises:
        InternalTopicError: the topic does not exist.
        TransportError: Kafka is unreachable or refused a request.
    """
    target = KafkaTarget.of(bootstrap)
    with kafka_errors(target, f"reading the offsets of group {group} on {topic}"):
        return await _committed_lag(target, topic, group)


async def _committed_lag(target: KafkaTarget, topic: str, group: str) -> list[PartitionLag]:
    client = admin(target)
    await client.start()
    try:
        if topic not in await client.list_topics():  # checked first: describing a missing topic may create it
            raise InternalTopicError(f"topic {topic} does not exist (kflow topics create)")
        [described] = await client.describe_topics([topic])
        tps = sorted(
            (TopicPartition(topic, p["partition"]) for p in described["partitions"]), key=lambda tp: tp.partition
        )
        committed = {
            tp: meta.offset
            for tp, meta in (await client.list_consumer_group_offsets(group)).items()
            if tp.topic == topic and meta.offset >= 0
        }
        reader = consumer(target)  # read_committed: the end is what the group can read
        await reader.start()
        try:
            ends, starts = await reader.end_offsets(tps), await reader.beginning_offsets(tps)
        finally:
            await reader.stop()
    finally:
        await client.close()
    return [
        PartitionLag(tp.partition, ends[tp], committed.get(tp), max(0, ends[tp] - committed.get(tp, starts[tp])))
        for tp in tps
    ]


async def close_consumer(client: AIOKafkaConsumer, timeout: float = 15.0) -> None:
    """Stop ``client`` within ``timeout`` seconds, whatever state a broker fault left it in.

    aiokafka's ``stop`` can wait for a broker that is gone (leaving the group, a fetch in its error back-off) and
    then raise ``CancelledError`` from inside; its connections are closed directly then.
    """
    if not await _stopped_within(client, timeout, "consumer"):
        await _close_quietly(getattr(client, "_client", None))
        client._closed = True  # abandoned on purpose: no "unclosed" warning when it is collected


async def close_producer(client: AIOKafkaProducer, timeout: float = 10.0) -> None:
    """Stop ``client`` within ``timeout`` seconds; with a broker gone, abandon what it still holds.

    A producer's ``stop`` waits for batches in flight (idempotent batches never expire) and is not re-entrant, so
    after a timeout its sender task is cancelled and its connections closed directly. What was abandoned was not
    acknowledged, so it was not committed either: the caller redoes it (a transaction is aborted by the fencing
    of the next producer with its transactional id, or by the broker's transaction timeout).
    """
    if not await _stopped_within(client, timeout, "producer"):
        sender = getattr(getattr(client, "_sender", None), "sender_task", None)
        if sender is not None:
            sender.cancel()
        await _close_quietly(getattr(client, "client", None))
        client._closed = True  # abandoned on purpose: no "unclosed" warning when it is collected


async def _stopped_within(client: AIOKafkaConsumer | AIOKafkaProducer, timeout: float, kind: str) -> bool:
    """Whether ``client.stop()`` finished within ``timeout`` (else it is to be abandoned)."""
    try:
        async with asyncio.timeout(timeout):
            await client.stop()
    except (Exception, asyncio.CancelledError) as exc:
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise  # this task is being cancelled, not just the client's
        log.warning("%s did not stop cleanly (%s); closing its connections", kind, type(exc).__name__)
        return False
    return True


async def _close_quietly(client: Any) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception, asyncio.CancelledError):
        async with asyncio.timeout(5):
            await client.close()


async def read_partition(
    target: KafkaTarget | str, tp: TopicPartition, start: int | None, stall_seconds: float = 30.0
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The committed records of one partition from ``start`` (None: the beginning) to its end as it was when
    the read began, with a short-lived consumer.

    Every wait is bounded: a broker that goes away mid-read raises ``TimeoutError`` after ``stall_seconds``
    rather than hang (the position moving over transaction markers, which yield no record, counts as progress).
    """
    reader = consumer(target, max_poll_records=5000)
    try:
        async with asyncio.timeout(stall_seconds):
            await reader.start()
            reader.assign([tp])
            if start is None:
                await reader.seek_to_beginning(tp)
            else:
                reader.seek(tp, start)
            end = (await reader.end_offsets([tp]))[tp]
        position, moved = -1, time.monotonic()
        while True:
            async with asyncio.timeout(stall_seconds):  # one wait for the broker, never all of the read
                now_at = await reader.position(tp)
                if now_at >= end:
                    return
                batch = await reader.getmany(tp, timeout_ms=1000)
            if now_at != position:
                position, moved = now_at, time.monotonic()
            elif time.monotonic() - moved > stall_seconds:
                raise TimeoutError(f"reading {tp.topic}[{tp.partition}] stood still at offset {position} (end {end})")
            for message in batch.get(tp, []):
                yield message
    finally:
        await close_consumer(reader)
