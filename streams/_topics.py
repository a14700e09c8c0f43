"""Every topic kflow uses, declared once: name, what flows on it, and its broker config.

Invariant: every record on every topic is keyed by the run id as raw UTF-8 bytes (no JSON quoting), and
all topics have the same partition count, so one run's records share a partition number everywhere and
a run lives on exactly one orchestrator partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


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
    TopicSpec("state", "RunMarker, StateCheckpoint, ScheduleState (latest per key)",
              {"cleanup.policy": "compact", "retention.ms": "-1"}),
    # The delay processor's changelog, the recovery source of its SQLite due-time indexes. The one topic
    # not keyed by run id: keyed per timer (``{run_id}\x00{timer_id}``), written to the partition number of
    # the ``.timers`` partition the timer arrived on (streams._timer_changelog).
    TopicSpec("timer-index", "StartTimer of each armed timer, tombstone once fired or cancelled",
              {"cleanup.policy": "compact", "retention.ms": "-1"}),
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
    """Create every kflow topic that does not exist yet; return the names created (idempotent)."""
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
                await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                                    topic_configs=dict(spec.config))])
                created.append(name)
            except TopicAlreadyExistsError:  # a concurrent creator won the race
                pass
    finally:
        await admin.close()
    return created
