"""Every topic kflow uses, declared once: name, what flows on it, and its broker config.

Invariant: every record on every topic is keyed by the run id as raw UTF-8 bytes (no JSON quoting), and
all topics have the same partition count, so one run's records share a partition number everywhere and
a run lives on exactly one orchestrator partition.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from engine import KflowError
from streams._errors import kafka_errors

log = logging.getLogger(__name__)

_METADATA_WAIT_SECONDS = 15.0
_TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS: a concurrent processor created it first


class InternalTopicError(KflowError):
    """A kflow topic cannot do its job: missing (or its companion topic is), wrong partition count, not
    compacted, or it could not be created."""

    retryable = False


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its suffix after the prefix, the records it carries, and broker-side config."""

    suffix: str
    records: str
    config: dict[str, str] = field(default_factory=dict)


TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("inbox", "StartWorkflow, CancelWorkflow, ResumeHook, StepResult, TimerFired, RunFinished (child)"),
    # The event log is the source of truth for audit and rebuilds: never deleted by time.
    TopicSpec("history", "every history event", {"retention.ms": "-1"}),
    TopicSpec("tasks", "ExecuteStep"),
    TopicSpec("timers", "StartTimer, CancelTimer"),
    TopicSpec("completions", "RunFinished"),
    TopicSpec("dlq", "DeadLetter", {"retention.ms": "-1"}),
    # The orchestrator's restore state: finished-run markers, schedules, per-partition checkpoints.
    TopicSpec(
        "state",
        "RunMarker, StateCheckpoint, ScheduleState (latest per key)",
        {"cleanup.policy": "compact", "retention.ms": "-1"},
    ),
    # The timer processor's changelog, the recovery source of its SQLite due-time indexes. The one topic
    # not keyed by run id: keyed per timer (``{run_id}\x00{timer_id}``), written to the partition number of
    # the ``.timers`` partition the timer arrived on (streams.processors._timer_changelog).
    TopicSpec(
        "timer-index",
        "StartTimer of each armed timer, tombstone once fired or cancelled",
        {"cleanup.policy": "compact", "retention.ms": "-1"},
    ),
)


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one prefix (``KFLOW_TOPIC_PREFIX``)."""

    prefix: str = "kflow"

    def name(self, suffix: str) -> str:
        """Full name of the topic with ``suffix`` (``inbox``, ``history``, …)."""
        return f"{self.prefix}.{suffix}"

    @property
    def inbox(self) -> str:
        """All that drives a run."""
        return self.name("inbox")

    @property
    def history(self) -> str:
        """The event log."""
        return self.name("history")

    @property
    def tasks(self) -> str:
        """Step commands for step workers."""
        return self.name("tasks")

    @property
    def timers(self) -> str:
        """The delay topic."""
        return self.name("timers")

    @property
    def completions(self) -> str:
        """One record per finished run."""
        return self.name("completions")

    @property
    def dlq(self) -> str:
        """Records that could not be processed, with the reason."""
        return self.name("dlq")

    @property
    def state(self) -> str:
        """The orchestrator's compacted restore state (internal)."""
        return self.name("state")

    def all(self) -> list[str]:
        """Every topic name, in declaration order."""
        return [self.name(spec.suffix) for spec in TOPIC_SPECS]


async def create_topics(bootstrap: str, topics: Topics, partitions: int) -> list[str]:
    """Create every kflow topic that does not exist yet; return the names created (idempotent).

    Raises:
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(bootstrap, "creating topics"):
        return await _create_missing(bootstrap, topics, partitions)


async def _create_missing(bootstrap: str, topics: Topics, partitions: int) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        for spec in TOPIC_SPECS:
            name = topics.name(spec.suffix)
            if name in existing:
                continue
            try:
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=dict(spec.config))]
                )
                created.append(name)
            except TopicAlreadyExistsError:  # a concurrent creator won the race
                pass
    finally:
        await admin.close()
    return created


async def ensure_internal_topic(bootstrap: str, topics: Topics, suffix: str, *, alongside: str) -> None:
    """Create the internal topic ``suffix`` if missing (as declared in ``TOPIC_SPECS``, with the partition
    count of ``alongside``), else check that it is compacted and has that partition count.

    Only existing topics are described: a metadata request naming a missing topic makes a broker with
    ``auto.create.topics.enable`` create it, with the default (deleting, time-retained) config.

    Raises:
        InternalTopicError: ``alongside`` is missing, the topic has another partition count or is not compacted
            without time retention, or creating it failed.
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(bootstrap, f"checking topic {topics.name(suffix)}"):
        await _ensure_internal_topic(bootstrap, topics, suffix, alongside)


async def _ensure_internal_topic(bootstrap: str, topics: Topics, suffix: str, alongside: str) -> None:
    topic, companion = topics.name(suffix), topics.name(alongside)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if companion not in existing:
            raise InternalTopicError(f"{companion} does not exist: run `kflow topics create`")
        counts = await partition_counts(admin, [companion] + ([topic] if topic in existing else []))
        if topic not in existing:
            await _create(admin, topic, suffix, counts[companion])
            return
        if counts[topic] != counts[companion]:
            raise InternalTopicError(
                f"{topic} has {counts[topic]} partitions and {companion} {counts[companion]}: "
                f"they must match (partition N of one belongs to partition N of the other)"
            )
        config = await topic_config(admin, topic)
    finally:
        await admin.close()
    policy = set(config.get("cleanup.policy", "delete").split(","))
    if "compact" not in policy or ("delete" in policy and config.get("retention.ms") != "-1"):
        raise InternalTopicError(
            f"{topic} must be compacted without time retention (cleanup.policy=compact, "
            f"retention.ms=-1); it has cleanup.policy={config.get('cleanup.policy')} "
            f"retention.ms={config.get('retention.ms')}"
        )


async def _create(admin: AIOKafkaAdminClient, topic: str, suffix: str, partitions: int) -> None:
    (spec,) = [s for s in TOPIC_SPECS if s.suffix == suffix]
    response: Any = await admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=dict(spec.config))]
    )
    errors = [error for _, error, *_ in response.topic_errors if error not in (0, _TOPIC_EXISTS)]
    if errors:
        raise InternalTopicError(f"creating {topic} failed with Kafka error code {errors[0]}")
    log.warning("created %s (%d partitions): the topics were created before it existed", topic, partitions)


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each of ``names`` (existing ones), waiting out the metadata of a topic just created."""
    deadline = asyncio.get_running_loop().time() + _METADATA_WAIT_SECONDS
    while True:
        described = await admin.describe_topics(names)
        counts = {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
        if (len(counts) == len(names) and all(counts.values())) or asyncio.get_running_loop().time() > deadline:
            missing = [t for t in names if not counts.get(t)]
            if missing:
                raise InternalTopicError(f"no partition metadata for {', '.join(missing)}")
            return counts
        await asyncio.sleep(0.1)


async def topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    responses: list[Any] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = [entry for response in responses for resource in response.resources for entry in resource[4]]
    return {str(entry[0]): str(entry[1]) for entry in entries}
