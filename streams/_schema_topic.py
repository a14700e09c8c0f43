"""The ``.schemas`` topic: every writer schema kflow processes write with, so that a process of any release can
read a record a newer release wrote (a schema registry's storage topic, without a registry server).

The topic is compacted without time retention, keyed by the writer schema's fingerprint (16 lowercase hex
characters, the CRC-64-AVRO of its Parsing Canonical Form, as in the single-object header), valued with the
JSON of the expanded schema; every record goes to partition 0, so one read of one partition sees them all.

Every process that writes kflow records joins the topic before its first write (`join_schema_topic`): it
learns every schema already published, publishes those of its own schema set that are missing, and installs a
lookup that the codec calls for a fingerprint it does not know (a newer process started after this one). The
lookup reads the topic again, synchronously (it runs inside ``Codec.decode``), at most once per
``_REREAD_SECONDS`` per topic: a rolling upgrade needs it once per new schema, garbage bytes never cost more.

A learned schema is trusted only as far as its fingerprint: `schemas.learn_schema` computes the fingerprint from
the schema itself, never from the record key.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Final

from aiokafka import TopicPartition

from schemas import Codec, SchemaError, learn_schema, set_schema_source
from streams import kafka
from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget
from streams._topics import Topics, ensure_internal_topic

__all__ = ["join_schema_topic", "published_schemas", "watch_schema_topic"]

log = logging.getLogger(__name__)

_PARTITION: Final = 0
_REREAD_SECONDS: Final = 1.0  # a lookup re-reads one topic at most this often
_LOOKUP_TIMEOUT_SECONDS: Final = 10.0  # a lookup never blocks its caller longer than this

_joined: dict[tuple[KafkaTarget, str], float] = {}  # (cluster, topic) -> when it was last read (monotonic)
_joined_lock = threading.Lock()
_published: set[tuple[KafkaTarget, str]] = set()  # (cluster, topic) this process has published its schemas to


async def join_schema_topic(target: KafkaTarget, topics: Topics, codec: Codec) -> int:
    """Learn the schemas published on the ``.schemas`` topic, publish ``codec``'s missing ones; how many it published.

    Creates the topic (alongside ``.inbox``) when it is missing. Idempotent; once per process and topic.

    Raises:
        InternalTopicError: ``.inbox`` is missing, or ``.schemas`` is not compacted.
        TransportError: Kafka is unreachable or refused a request.
    """
    key = (target, topics.name("schemas"))
    if key in _published:
        return 0
    await ensure_internal_topic(target, topics, "schemas", alongside="inbox")
    present = await _read(target, topics.name("schemas"))
    missing = {fingerprint: text for fingerprint, text in codec.writer_schemas().items() if fingerprint not in present}
    if missing:
        with kafka_errors(target, f"publishing schemas to {topics.name('schemas')}"):
            sender = kafka.producer(target)
            await sender.start()
            try:
                sent = [
                    await sender.send(
                        topics.name("schemas"), text.encode(), key=fingerprint.hex().encode(), partition=_PARTITION
                    )
                    for fingerprint, text in sorted(missing.items())
                ]
                await asyncio.gather(*sent)
            finally:
                await kafka.close_producer(sender)
        log.info("published %d writer schema(s) to %s", len(missing), topics.name("schemas"))
    with _joined_lock:
        _joined[key] = time.monotonic()
    _published.add(key)
    set_schema_source(_lookup)
    return len(missing)


def watch_schema_topic(target: KafkaTarget, topics: Topics) -> None:
    """Let this process's codecs look unknown fingerprints up on ``topics.name("schemas")`` (no I/O now; for a process
    that only reads, e.g. a view of the history: it publishes nothing)."""
    with _joined_lock:
        _joined.setdefault((target, topics.name("schemas")), float("-inf"))
    set_schema_source(_lookup)


async def published_schemas(target: KafkaTarget, topics: Topics) -> dict[bytes, str]:
    """Fingerprint -> schema JSON of every schema on ``topics.name("schemas")`` (each one learned by this process too).

    Raises:
        TransportError: Kafka is unreachable or refused a request.
    """
    return await _read(target, topics.name("schemas"))


async def _read(target: KafkaTarget, topic: str) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    with kafka_errors(target, f"reading {topic}"):
        async for message in kafka.read_partition(target, TopicPartition(topic, _PARTITION), None, 15.0):
            if message.value is None:
                continue
            try:
                found[learn_schema(message.value)] = message.value.decode()
            except (SchemaError, UnicodeDecodeError) as exc:  # someone else's garbage: the topic stays usable
                log.warning("%s offset %d is not a schema: %s", topic, message.offset, exc)
    return found


def _lookup(fingerprint: bytes) -> None:
    """The codec's schema source: re-read each joined topic (not read within the last second) in a thread."""
    now = time.monotonic()
    with _joined_lock:
        due = [key for key, last in _joined.items() if now - last >= _REREAD_SECONDS]
        for key in due:
            _joined[key] = now
    for target, topic in due:
        found: dict[bytes, str] = {}
        reader = threading.Thread(target=_read_in_thread, args=(target, topic, found), daemon=True)
        reader.start()
        reader.join(_LOOKUP_TIMEOUT_SECONDS)
        if fingerprint in found:
            log.info("learned writer schema %s from %s", fingerprint.hex(), topic)
            return
    log.warning("writer schema %s is not on any schemas topic read", fingerprint.hex())


def _read_in_thread(target: KafkaTarget, topic: str, found: dict[bytes, str]) -> None:
    try:
        found.update(asyncio.run(asyncio.wait_for(_read(target, topic), _LOOKUP_TIMEOUT_SECONDS)))
    except Exception as exc:  # a lookup must never raise into the decoder: the record stays undecodable
        log.warning("could not read %s: %s", topic, exc)
