"""Every topic kflow uses, declared once: name, what flows on it, and its broker config.

Invariant: every record on every topic is keyed by the run id as raw UTF-8 bytes (no JSON quoting), and
all topics have the same partition count, so one run's records share a partition number everywhere and
a run lives on exactly one orchestrator partition.

Every topic is created with an explicit config, never the broker's defaults: its cleanup policy and
retention (``TopicSpec``), the replication factor (``KFLOW_REPLICATION_FACTOR``; unset: 3 on a cluster of at
least 3 brokers, else 1) and ``min.insync.replicas`` one less (at least 1), so that with producers' ``acks=all``
a write survives the loss of any one broker and the topic stays writable while one is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget
from streams._topic_state import InternalTopicError as InternalTopicError  # re-exported for streams
from streams._topic_state import TopicDrift as TopicDrift  # re-exported for streams
from streams._topic_state import (
    TopicState,
    broker_count,
    config_drift,
    describe_topics,
    listed,
    partition_layout,
    policies,
)
from streams._topic_state import partition_counts as partition_counts  # re-exported for streams
from streams._topic_state import topic_config as topic_config  # re-exported for streams
from streams.kafka import admin as admin_client

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS: a concurrent processor created it first
_COMPANION_WAIT_SECONDS = 3.0  # how long a missing companion topic may take to be listed (created just now)

DEFAULT_RETENTION_MS: Final = 30 * 86_400_000
"""``retention.ms`` of the topics carrying work in flight (``TopicSpec.work``) unless ``KFLOW_RETENTION`` says
otherwise: 30 days, far beyond an outage a consumer is expected to sit out, and explicit."""

AUTO_REPLICATION_BROKERS: Final = 3
"""Unset ``KFLOW_REPLICATION_FACTOR``: replication factor 3 on a cluster of at least this many brokers, else 1."""


class TopicDriftError(InternalTopicError):
    """Existing kflow topics differ from what ``create_topics`` would make, in partition count or cleanup
    policy; the message lists every difference on one line (``kflow topics check`` reports them all)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its suffix after the prefix, the records it carries, and broker-side config.

    ``work``: the topic carries work in flight (or dead letters), and its ``retention.ms`` is ``KFLOW_RETENTION``
    (default ``DEFAULT_RETENTION_MS``); the others name their retention in ``config``.
    """

    suffix: str
    records: str
    config: dict[str, str] = field(default_factory=dict)
    work: bool = False


_DELETE_FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1"}
_COMPACTED = {"cleanup.policy": "compact", "retention.ms": "-1"}

TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "inbox", "StartWorkflow, CancelWorkflow, ResumeHook, StepResult, TimerFired, RunFinished (child)", work=True
    ),
    # The event log is the source of truth for audit and rebuilds: never deleted by time.
    TopicSpec("history", "every history event", _DELETE_FOREVER),
    TopicSpec("tasks", "ExecuteStep", work=True),
    # Armed timers outlive this topic's retention: the timer processor's changelog (.timer-index) keeps them.
    TopicSpec("timers", "StartTimer, CancelTimer", work=True),
    TopicSpec("completions", "RunFinished", work=True),
    # Evidence for operators: kept as long as the work itself, time enough to notice and replay it.
    TopicSpec("dlq", "DeadLetter", work=True),
    # The orchestrator's restore state: finished-run markers, schedules, per-partition checkpoints.
    TopicSpec("state", "RunMarker, StateCheckpoint, ScheduleState (latest per key)", _COMPACTED),
    # The timer processor's changelog, the recovery source of its SQLite due-time indexes. The one topic
    # not keyed by run id: keyed per timer (``{run_id}\x00{timer_id}``), written to the partition number of
    # the ``.timers`` partition the timer arrived on (streams.processors._timer_changelog).
    TopicSpec("timer-index", "StartTimer of each armed timer, tombstone once fired or cancelled", _COMPACTED),
    # Every writer schema in use, so an older release can read a newer one's records (streams._schema_topic).
    TopicSpec("schemas", "the JSON of each writer schema, keyed by its fingerprint (all on partition 0)", _COMPACTED),
)


def min_insync_replicas(replication_factor: int) -> int:
    """``min.insync.replicas`` for ``replication_factor``: one less, at least 1."""
    return max(1, replication_factor - 1)


def auto_replication_factor(brokers: int) -> int:
    """The replication factor when ``KFLOW_REPLICATION_FACTOR`` is unset: 3 with at least 3 brokers, else 1."""
    return 3 if brokers >= AUTO_REPLICATION_BROKERS else 1


def topic_configs(spec: TopicSpec, replication_factor: int, retention_ms: int = DEFAULT_RETENTION_MS) -> dict[str, str]:
    """The broker config kflow creates ``spec``'s topic with: cleanup policy, retention, min.insync.replicas."""
    config = {"cleanup.policy": "delete", **spec.config}
    if spec.work:
        config["retention.ms"] = str(retention_ms)
    config["min.insync.replicas"] = str(min_insync_replicas(replication_factor))
    return config


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


def topic_drift(
    name: str,
    spec: TopicSpec,
    state: TopicState | None,
    *,
    partitions: int,
    replication_factor: int,
    retention_ms: int = DEFAULT_RETENTION_MS,
) -> list[TopicDrift]:
    """How ``state`` (None: the topic does not exist) differs from ``spec`` created with these options."""
    expected = {
        "partitions": str(partitions),
        "replication.factor": str(replication_factor),
        **topic_configs(spec, replication_factor, retention_ms),
    }
    return config_drift(name, expected, state)


_REFUSED = frozenset({"partitions", "cleanup.policy"})
"""Differences ``create_topics`` refuses to create over: the ones that break kflow's invariants."""


async def create_topics(
    bootstrap: KafkaTarget | str,
    topics: Topics,
    partitions: int,
    *,
    replication_factor: int | None = None,
    retention_ms: int = DEFAULT_RETENTION_MS,
) -> list[str]:
    """Create every kflow topic that does not exist yet; return the names created (idempotent).

    Args:
        bootstrap: the Kafka cluster (a ``KafkaTarget``, or bootstrap servers over PLAINTEXT).
        topics: the names.
        partitions: partition count of every topic.
        replication_factor: None: 3 when the cluster has at least 3 brokers, else 1.
        retention_ms: retention of the topics that carry work in flight (-1: unbounded).

    Raises:
        TopicDriftError: an existing kflow topic has another partition count or cleanup policy (nothing is
            created then, unless the topic appeared while the others were created).
        InternalTopicError: the replication factor is above the broker count, or creating a topic failed.
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(bootstrap, "creating topics"):
        admin = admin_client(bootstrap)
        await admin.start()
        try:
            return await _create_missing(admin, topics, partitions, replication_factor, retention_ms)
        finally:
            await admin.close()


async def _create_missing(
    admin: AIOKafkaAdminClient, topics: Topics, partitions: int, factor: int | None, retention_ms: int
) -> list[str]:
    replication = await replication_for(admin, factor)
    states = await describe_topics(admin, topics.all())
    _refuse_drift(topics, states, partitions, replication)
    missing = [spec for spec in TOPIC_SPECS if topics.name(spec.suffix) not in states]
    if not missing:
        return []
    response: Any = await admin.create_topics(
        [
            NewTopic(
                topics.name(spec.suffix),
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=topic_configs(spec, replication, retention_ms),
            )
            for spec in missing
        ]
    )
    _raise_create_errors(response)
    raced = [str(topic) for topic, error, *_ in response.topic_errors if error == _TOPIC_EXISTS]
    created = [topics.name(spec.suffix) for spec in missing if topics.name(spec.suffix) not in raced]
    await listed(admin, created + raced)  # usable by the caller at once
    if raced:  # made a moment ago by someone else (not listed yet when described): judged as any existing one
        _refuse_drift(topics, await describe_topics(admin, raced), partitions, replication)
    return created


def _refuse_drift(topics: Topics, states: dict[str, TopicState], partitions: int, replication: int) -> None:
    drift = [
        difference
        for spec in TOPIC_SPECS
        if (state := states.get(topics.name(spec.suffix))) is not None
        for difference in topic_drift(
            topics.name(spec.suffix), spec, state, partitions=partitions, replication_factor=replication
        )
        if difference.setting in _REFUSED
    ]
    if drift:
        raise TopicDriftError(
            "existing topics differ from their declaration, refusing to create over them: "
            + "; ".join(str(d) for d in drift)
            + " (delete or fix them, or use another KFLOW_TOPIC_PREFIX / KFLOW_PARTITIONS)"
        )


def _raise_create_errors(response: Any) -> None:
    errors = [
        (str(topic), error, rest) for topic, error, *rest in response.topic_errors if error not in (0, _TOPIC_EXISTS)
    ]
    if errors:
        topic, code, rest = errors[0]
        detail = f": {rest[0]}" if rest and rest[0] else ""
        raise InternalTopicError(f"creating {topic} failed with Kafka error code {code}{detail}")


async def replication_for(admin: AIOKafkaAdminClient, configured: int | None) -> int:
    """``configured``, checked against the broker count, or (None) the automatic choice from the broker count.

    Raises:
        InternalTopicError: ``configured`` is above the broker count.
    """
    brokers = await broker_count(admin)
    if configured is None:
        return auto_replication_factor(brokers)
    if configured > brokers:
        raise InternalTopicError(f"KFLOW_REPLICATION_FACTOR is {configured} but the cluster has {brokers} broker(s)")
    return configured


async def check_topics(
    bootstrap: KafkaTarget | str,
    topics: Topics,
    partitions: int,
    *,
    replication_factor: int | None = None,
    retention_ms: int = DEFAULT_RETENTION_MS,
) -> list[TopicDrift]:
    """How every kflow topic differs from its declaration with these options (empty: no drift).

    Reports missing topics, partition counts, replication factors, cleanup policies, retentions and
    ``min.insync.replicas``. ``replication_factor`` None: the automatic choice from the broker count.

    Raises:
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(bootstrap, "checking topics"):
        admin = admin_client(bootstrap)
        await admin.start()
        try:
            replication = replication_factor or auto_replication_factor(await broker_count(admin))
            states = await describe_topics(admin, topics.all())
        finally:
            await admin.close()
    return [
        difference
        for spec in TOPIC_SPECS
        for difference in topic_drift(
            topics.name(spec.suffix),
            spec,
            states.get(topics.name(spec.suffix)),
            partitions=partitions,
            replication_factor=replication,
            retention_ms=retention_ms,
        )
    ]


async def ensure_internal_topic(
    target: KafkaTarget, topics: Topics, suffix: str, *, alongside: str, replication_factor: int | None = None
) -> None:
    """Create the internal topic ``suffix`` if missing (as declared in ``TOPIC_SPECS``, with the partition
    count of ``alongside``, and its replication factor unless ``replication_factor`` is given), else check that
    it is compacted and has that partition count.

    Only existing topics are described: a metadata request naming a missing topic makes a broker with
    ``auto.create.topics.enable`` create it, with the default (deleting, time-retained) config.

    Raises:
        InternalTopicError: ``alongside`` is missing, the topic has another partition count or is not compacted
            without time retention, or creating it failed.
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(target, f"checking topic {topics.name(suffix)}"):
        await _ensure_internal_topic(target, topics, suffix, alongside, replication_factor)


async def _ensure_internal_topic(
    target: KafkaTarget, topics: Topics, suffix: str, alongside: str, replication_factor: int | None
) -> None:
    topic, companion = topics.name(suffix), topics.name(alongside)
    admin = admin_client(target)
    await admin.start()
    try:
        existing = await listed(admin, [companion], wait=_COMPANION_WAIT_SECONDS)
        if companion not in existing:
            raise InternalTopicError(f"{companion} does not exist: run `kflow topics create`")
        layout = await partition_layout(admin, [companion] + ([topic] if topic in existing else []))
        count, companion_factor = layout[companion]
        if topic not in existing:
            if await _create(admin, topic, suffix, count, replication_factor or companion_factor):
                return
            await listed(admin, [topic])  # it existed after all (a concurrent creator): check it
            layout = await partition_layout(admin, [companion, topic])
        if layout[topic][0] != count:
            raise InternalTopicError(
                f"{topic} has {layout[topic][0]} partitions and {companion} {count}: "
                f"they must match (partition N of one belongs to partition N of the other)"
            )
        config = await topic_config(admin, topic)
    finally:
        await admin.close()
    policy = policies(config.get("cleanup.policy", "delete"))
    if "compact" not in policy or ("delete" in policy and config.get("retention.ms") != "-1"):
        raise InternalTopicError(
            f"{topic} must be compacted without time retention (cleanup.policy=compact, "
            f"retention.ms=-1); it has cleanup.policy={config.get('cleanup.policy')} "
            f"retention.ms={config.get('retention.ms')}"
        )


async def _create(admin: AIOKafkaAdminClient, topic: str, suffix: str, partitions: int, replication: int) -> bool:
    """Create ``topic`` as ``suffix`` is declared; False when it exists already."""
    (spec,) = [s for s in TOPIC_SPECS if s.suffix == suffix]
    response: Any = await admin.create_topics(
        [
            NewTopic(
                topic,
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=topic_configs(spec, replication),
            )
        ]
    )
    _raise_create_errors(response)
    if any(error == _TOPIC_EXISTS for _, error, *_ in response.topic_errors):
        return False
    await listed(admin, [topic])
    made = (topic, partitions, replication)
    log.warning("created %s (%d partitions, replication factor %d): the other topics are older", *made)
    return True
