"""What the web UI's dashboard reads from Kafka (nothing here keeps figures or prints):

- ``TopicFollower``: follows some of kflow's topics from a bounded look-back (the first offset at or after
  ``since_ms``, ``offsets_for_times``) without a consumer group (it commits nothing, joins nothing), and returns
  the records of the types it is asked for, decoded to plain fields; records of other types are skipped by the
  fingerprint in their header, undecoded;
- ``consumer_lags``: how far each of kflow's consumer groups is behind (its committed offsets against the
  partitions' ends: ``streams.kafka.committed_lag``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import Codec, SchemaError
from streams._errors import kafka_errors
from streams._settings import Settings
from streams._topics import Topics
from streams.kafka import PartitionLag, close_consumer, committed_lag, consumer
from streams.ops._dlq import topic_partitions

CONSUMER_GROUPS: Final = (
    ("orchestrator", "inbox"),
    ("workers", "tasks"),
    ("delay", "timers"),
    ("materializer", "history"),
)
"""kflow's consumer groups (``<prefix>.<group>``) and the topic each consumes (``<prefix>.<topic>``)."""

_CODEC = Codec()


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record a ``TopicFollower`` returns: the topic's role (``completions``, ``history``, ``dlq``, …), the
    record type, its fields as decoded (payloads stay bytes), the record's Kafka timestamp (epoch ms), and where it
    is (partition, offset: ``resume`` of a later follower)."""

    topic: str
    name: str
    fields: dict[str, object]
    timestamp: int
    partition: int = 0
    offset: int = -1


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One consumer group: the topic it reads, records behind in all (``lag``) and per partition."""

    group: str
    topic: str
    lag: int
    partitions: list[PartitionLag]


class TopicFollower:
    """Follows ``topics`` (role -> topic name, e.g. ``{"completions": "kflow.completions"}``) from ``since_ms``, or
    for each partition in ``resume`` (``(role, partition)`` -> offset) from that offset.

    Call ``start``, then ``poll`` repeatedly, then ``stop``. Read-committed, no group: several followers (several
    UI processes) each read everything.

    Raises:
        OpsError: (``start``) a topic does not exist.
        TransportError: (``start``, ``poll``) Kafka is unreachable or refused a request.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Mapping[str, str],
        wanted: Collection[str],
        since_ms: int,
        resume: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        self._target = settings.kafka_target()
        self._roles = {name: role for role, name in topics.items()}
        self._wanted = frozenset(wanted)
        self._skip = frozenset(_CODEC.fingerprint(name) for name in _CODEC.names if name not in self._wanted)
        self._since = since_ms
        self._resume = dict(resume or {})
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Assign every partition of the topics and seek each to its ``resume`` offset, else its first record at or
        after ``since_ms``. The consumer is closed when this fails."""
        tps = [
            TopicPartition(topic, partition)
            for topic in self._roles
            for partition in range(await topic_partitions(self._target, topic))
        ]
        reader = consumer(self._target, max_poll_records=5000)
        with kafka_errors(self._target, f"following {', '.join(self._roles)}"):
            try:
                await reader.start()
                reader.assign(tps)
                found = await reader.offsets_for_times(dict.fromkeys(tps, self._since))
                self._ends = await reader.end_offsets(tps)
                for tp in tps:
                    resumed = self._resume.get((self._roles[tp.topic], tp.partition))
                    by_time = self._ends[tp] if found.get(tp) is None else found[tp].offset
                    reader.seek(tp, by_time if resumed is None else resumed)
            except BaseException:
                await close_consumer(reader)
                raise
        self._consumer = reader

    async def poll(self, timeout_ms: int = 1000) -> list[TopicRecord]:
        """The wanted records that arrived since the last poll (waits up to ``timeout_ms`` for some)."""
        if self._consumer is None:
            raise RuntimeError("TopicFollower.start() was not called")
        with kafka_errors(self._target, f"following {', '.join(self._roles)}"):
            batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        found: list[TopicRecord] = []
        for tp, messages in batches.items():
            role = self._roles[tp.topic]
            for message in messages:
                record = self._decoded(message.value)
                if record is not None:
                    at = int(message.timestamp)
                    found.append(TopicRecord(role, record[0], record[1], at, tp.partition, message.offset))
        return found

    async def caught_up(self) -> bool:
        """Whether every partition was read up to the end it had when ``start`` ran (the look-back is done)."""
        if self._consumer is None:
            return False
        for tp, end in self._ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def stop(self) -> None:
        """Close the consumer."""
        if self._consumer is not None:
            reader, self._consumer = self._consumer, None
            await close_consumer(reader)

    def _decoded(self, value: bytes | None) -> tuple[str, dict[str, object]] | None:
        if value is None or value[2:10] in self._skip:
            return None
        try:
            decoded = _CODEC.decode(value)
        except SchemaError:
            return None
        return (decoded.name, decoded.record) if decoded.name in self._wanted else None


async def consumer_lags(settings: Settings) -> list[GroupLag]:
    """Each of kflow's consumer groups (``CONSUMER_GROUPS``): records of its topic it has not committed yet.

    Raises:
        InternalTopicError: a topic does not exist (``kflow topics create``).
        TransportError: Kafka is unreachable or refused a request.
    """
    topics = Topics(settings.topic_prefix)
    found: list[GroupLag] = []
    for group, role in CONSUMER_GROUPS:
        name, topic = f"{settings.topic_prefix}.{group}", getattr(topics, role)
        partitions = await committed_lag(settings.kafka_target(), topic, name)
        found.append(GroupLag(name, topic, sum(p.lag for p in partitions), partitions))
    return found
