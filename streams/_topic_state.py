"""What a Kafka cluster says about topics: partition layout, effective config, and how a topic differs from
what kflow declares (``TopicDrift``). The admin-client reads behind ``streams._topics``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from engine import KflowError

_METADATA_WAIT_SECONDS = 15.0
_UNKNOWN_TOPIC = 3  # Kafka error code UNKNOWN_TOPIC_OR_PARTITION: a broker's metadata lags a topic just created


class InternalTopicError(KflowError):
    """A kflow topic cannot do its job: missing (or its companion topic is), wrong partition count, not
    compacted, or it could not be created."""

    retryable = False


@dataclass(frozen=True, slots=True)
class TopicDrift:
    """One way an existing kflow topic differs from its declaration (or is missing).

    ``setting``: ``missing``, ``partitions``, ``replication.factor``, ``cleanup.policy``, ``retention.ms`` or
    ``min.insync.replicas``; ``expected`` / ``actual`` as text (``actual`` empty for a missing topic).
    """

    topic: str
    setting: str
    expected: str
    actual: str

    def __str__(self) -> str:
        if self.setting == "missing":
            return f"{self.topic} is missing"
        return f"{self.topic} has {self.setting}={self.actual}, expected {self.expected}"


@dataclass(frozen=True, slots=True)
class TopicState:
    """What the cluster says about one existing topic: partition count, replication factor, config."""

    partitions: int
    replication_factor: int
    config: dict[str, str]


def config_drift(name: str, expected: dict[str, str], state: TopicState | None) -> list[TopicDrift]:
    """How ``state`` (None: the topic does not exist) differs from ``expected``: ``partitions``,
    ``replication.factor`` and config entries; cleanup policies compare as sets (``compact,delete``)."""
    if state is None:
        return [TopicDrift(name, "missing", "", "")]
    actual = {"partitions": str(state.partitions), "replication.factor": str(state.replication_factor), **state.config}
    drift: list[TopicDrift] = []
    for setting, want in expected.items():
        have = actual.get(setting, "")
        same = policies(have) == policies(want) if setting == "cleanup.policy" else have == want
        if not same:
            drift.append(TopicDrift(name, setting, want, have or "unset"))
    return drift


def policies(value: str) -> frozenset[str]:
    """The policies of a ``cleanup.policy`` value, as a set."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


async def broker_count(admin: AIOKafkaAdminClient) -> int:
    """How many brokers the cluster has (its metadata)."""
    cluster = await admin.describe_cluster()
    return len(cluster.get("brokers", ()))


async def listed(admin: AIOKafkaAdminClient, names: list[str], wait: float = _METADATA_WAIT_SECONDS) -> set[str]:
    """Every topic the cluster lists, asking again for up to ``wait`` seconds while one of ``names`` is not
    among them (a broker lists a topic just created a moment after the controller made it)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        found = set(await admin.list_topics())
        if set(names) <= found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)


async def describe_topics(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    """The state of those of ``names`` that exist (only they are described: a metadata request naming a
    missing topic makes a broker with ``auto.create.topics.enable`` create it)."""
    listed = set(await admin.list_topics())
    existing = [name for name in names if name in listed]
    if not existing:
        return {}
    layout = await partition_layout(admin, existing)
    configs = await topic_configs_of(admin, existing)
    return {name: TopicState(layout[name][0], layout[name][1], configs.get(name, {})) for name in existing}


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each of ``names`` (existing ones), waiting out the metadata of a topic just created."""
    return {name: count for name, (count, _) in (await partition_layout(admin, names)).items()}


async def partition_layout(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, int]]:
    """``(partition count, replication factor)`` of each of ``names`` (existing ones), waiting out the metadata
    of a topic just created. The replication factor is the smallest of its partitions'."""
    deadline = asyncio.get_running_loop().time() + _METADATA_WAIT_SECONDS
    while True:
        described = await admin.describe_topics(names)
        layout = {
            d["topic"]: (len(d["partitions"]), min((len(p["replicas"]) for p in d["partitions"]), default=0))
            for d in described
            if d["error_code"] == 0
        }
        complete = len(layout) == len(names) and all(count for count, _ in layout.values())
        if complete or asyncio.get_running_loop().time() > deadline:
            missing = [t for t in names if not layout.get(t, (0, 0))[0]]
            if missing:
                raise InternalTopicError(f"no partition metadata for {', '.join(missing)}")
            return layout
        await asyncio.sleep(0.1)


async def topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """The effective config of ``topic`` (its own settings and the broker defaults it inherits)."""
    return (await topic_configs_of(admin, [topic])).get(topic, {})


async def topic_configs_of(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """The effective config of each of ``names``, in one request (repeated while a broker does not know a topic
    just created yet).

    Raises:
        InternalTopicError: a topic's config stays unknown, or the broker refuses to describe it.
    """
    deadline = asyncio.get_running_loop().time() + _METADATA_WAIT_SECONDS
    while True:
        responses: list[Any] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        resources = [resource for response in responses for resource in response.resources]
        failed = {str(r[3]): (int(r[0]), r[1]) for r in resources if r[0] != 0}
        if not failed:
            return {str(r[3]): {str(entry[0]): str(entry[1]) for entry in r[4]} for r in resources}
        unknown = all(code == _UNKNOWN_TOPIC for code, _ in failed.values())
        if not unknown or asyncio.get_running_loop().time() > deadline:
            name, (code, message) = next(iter(failed.items()))
            raise InternalTopicError(f"describing the config of {name} failed with Kafka error code {code} {message}")
        await asyncio.sleep(0.1)
