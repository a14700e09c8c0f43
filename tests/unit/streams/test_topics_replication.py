"""Topic configs per replication factor, the automatic replication choice, drift detection and ``create_topics``
refusing over drifted topics, all against a fake admin client (no broker)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from schemas import RecordCodec
from streams import (
    TOPIC_SPECS,
    InternalTopicError,
    Settings,
    TopicDrift,
    TopicDriftError,
    Topics,
    check_topics,
    create_topics,
)
from streams.cli import main
from streams.processors import TimerChangelog

DEFAULT_RETENTION_MS = 30 * 86_400_000
SPECS = {spec.suffix: spec for spec in TOPIC_SPECS}
WORK = ("inbox", "tasks", "timers", "completions", "dlq")


@dataclass
class FakeAdmin:
    """The admin-client calls kflow makes, answered from ``topics`` ({name: (partitions, rf, config)})."""

    brokers: int = 1
    topics: dict[str, tuple[int, int, dict[str, str]]] = field(default_factory=dict)
    created: list[Any] = field(default_factory=list)
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (error code, message)
    late: dict[str, tuple[int, int, dict[str, str]]] = field(default_factory=dict)  # listed once created over

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": n} for n in range(self.brokers)], "controller_id": 0}

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        assert all(name in self.topics for name in names), "a missing topic was named in a metadata request"
        return [
            {
                "topic": name,
                "error_code": 0,
                "partitions": [{"partition": p, "replicas": list(range(self.topics[name][1]))} for p in range(n)],
            }
            for name in names
            for n in [self.topics[name][0]]
        ]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        rows = [
            (0, None, 2, r.name, [(key, value, False, False, False) for key, value in self.topics[r.name][2].items()])
            for r in resources
        ]
        return [SimpleNamespace(resources=rows)]

    async def create_topics(self, new_topics: list[Any]) -> Any:
        errors: list[tuple[str, int, str | None]] = []
        for topic in new_topics:
            if topic.name in self.late:  # another creator made it a moment ago: listed from now on
                self.topics[topic.name] = self.late.pop(topic.name)
                errors.append((topic.name, 36, f"Topic '{topic.name}' already exists."))
                continue
            if topic.name in self.refuse:
                errors.append((topic.name, *self.refuse[topic.name]))
                continue
            self.created.append(topic)
            broker_defaults = {"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "1"}
            config = {**broker_defaults, **topic.topic_configs}
            self.topics[topic.name] = (topic.num_partitions, topic.replication_factor, config)
            errors.append((topic.name, 0, None))
        return SimpleNamespace(topic_errors=errors)


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    fake = FakeAdmin()
    monkeypatch.setattr("streams.kafka.AIOKafkaAdminClient", lambda **_: fake)  # every admin client kflow makes
    return fake


def _configs(admin: FakeAdmin, prefix: str = "p") -> dict[str, dict[str, str]]:
    """What each topic was created with (``topic_configs`` of its ``NewTopic``), by suffix."""
    return {t.name.removeprefix(prefix + "."): dict(t.topic_configs) for t in admin.created}


# --- configs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("brokers", "factor", "insync"), [(1, 1, "1"), (2, 2, "1"), (3, 3, "2"), (5, 5, "4")])
def test_every_topic_gets_min_insync_replicas_one_below_the_replication_factor(
    admin: FakeAdmin, brokers: int, factor: int, insync: str
) -> None:
    admin.brokers = brokers
    asyncio.run(create_topics("b:1", Topics("p"), 2, replication_factor=factor))
    assert {t.replication_factor for t in admin.created} == {factor}
    assert {c["min.insync.replicas"] for c in _configs(admin).values()} == {insync}


@pytest.mark.parametrize("brokers", [1, 3])
def test_each_topic_has_an_explicit_cleanup_policy_and_retention(admin: FakeAdmin, brokers: int) -> None:
    admin.brokers = brokers  # factor: 1, then 3
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    insync = "1" if brokers == 1 else "2"
    configs = _configs(admin)
    assert set(configs) == set(SPECS)
    for suffix in WORK:
        assert configs[suffix] == {
            "cleanup.policy": "delete",
            "retention.ms": str(DEFAULT_RETENTION_MS),
            "min.insync.replicas": insync,
        }
    assert configs["history"] == {"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": insync}
    for suffix in ("state", "timer-index"):
        assert configs[suffix] == {"cleanup.policy": "compact", "retention.ms": "-1", "min.insync.replicas": insync}


@pytest.mark.parametrize(("retention", "value"), [(-1, "-1"), (604_800_000, "604800000")])
def test_the_retention_setting_reaches_only_the_work_topics(admin: FakeAdmin, retention: int, value: str) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2, retention_ms=retention))
    configs = _configs(admin)
    assert {suffix for suffix in WORK if configs[suffix]["retention.ms"] == value} == set(WORK)
    assert {configs[suffix]["retention.ms"] for suffix in set(SPECS) - set(WORK)} == {"-1"}


@pytest.mark.parametrize(("brokers", "factor"), [(1, 1), (2, 1), (3, 3), (4, 3), (9, 3)])
def test_the_automatic_replication_factor_follows_the_broker_count(admin: FakeAdmin, brokers: int, factor: int) -> None:
    admin.brokers = brokers
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    assert {t.replication_factor for t in admin.created} == {factor}


# --- create ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("brokers", "factor"), [(1, 1), (3, 3)])
def test_create_uses_the_automatic_replication_from_the_cluster(admin: FakeAdmin, brokers: int, factor: int) -> None:
    admin.brokers = brokers
    created = asyncio.run(create_topics("b:1", Topics("p"), 4))
    assert created == Topics("p").all()
    for topic in admin.created:
        assert (topic.num_partitions, topic.replication_factor) == (4, factor)
        assert topic.topic_configs["min.insync.replicas"] == str(max(1, factor - 1))


def test_create_with_a_configured_factor_and_retention(admin: FakeAdmin) -> None:
    admin.brokers = 5
    asyncio.run(create_topics("b:1", Topics("p"), 2, replication_factor=2, retention_ms=-1))
    assert {t.replication_factor for t in admin.created} == {2}
    assert {t.topic_configs["min.insync.replicas"] for t in admin.created} == {"1"}
    assert admin.topics["p.inbox"][2]["retention.ms"] == "-1"


def test_a_replication_factor_above_the_broker_count_is_refused_before_creating(admin: FakeAdmin) -> None:
    with pytest.raises(InternalTopicError, match=r"KFLOW_REPLICATION_FACTOR is 3 but the cluster has 1 broker"):
        asyncio.run(create_topics("b:1", Topics("p"), 2, replication_factor=3))
    assert admin.created == []


def test_a_broker_refusing_a_topic_is_an_error_with_its_message(admin: FakeAdmin) -> None:
    admin.refuse["p.tasks"] = (38, "Replication factor: 3 larger than available brokers: 1.")
    with pytest.raises(InternalTopicError, match=r"creating p.tasks failed with Kafka error code 38: Replication"):
        asyncio.run(create_topics("b:1", Topics("p"), 2))


def test_create_is_idempotent_and_reports_existing_topics(admin: FakeAdmin) -> None:
    assert len(asyncio.run(create_topics("b:1", Topics("p"), 2))) == len(TOPIC_SPECS)
    assert asyncio.run(create_topics("b:1", Topics("p"), 2)) == []
    del admin.topics["p.dlq"]
    assert asyncio.run(create_topics("b:1", Topics("p"), 2)) == ["p.dlq"]


def test_a_concurrent_creator_winning_the_race_is_not_an_error(admin: FakeAdmin) -> None:
    admin.late["p.inbox"] = (2, 1, {"cleanup.policy": "delete", "retention.ms": str(DEFAULT_RETENTION_MS)})
    created = asyncio.run(create_topics("b:1", Topics("p"), 2))
    assert "p.inbox" not in created and len(created) == len(TOPIC_SPECS) - 1


def test_create_refuses_over_topics_with_another_partition_count_or_cleanup_policy(admin: FakeAdmin) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    admin.topics["p.inbox"] = (3, 1, admin.topics["p.inbox"][2])
    admin.topics["p.state"] = (2, 1, {**admin.topics["p.state"][2], "cleanup.policy": "delete"})
    del admin.topics["p.tasks"]
    admin.created.clear()
    with pytest.raises(TopicDriftError) as caught:
        asyncio.run(create_topics("b:1", Topics("p"), 2))
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, InternalTopicError)
    assert "p.inbox has partitions=3, expected 2" in message
    assert "p.state has cleanup.policy=delete, expected compact" in message
    assert admin.created == []  # nothing created, not even the missing one


def test_a_topic_that_appears_while_creating_is_judged_like_an_existing_one(admin: FakeAdmin) -> None:
    admin.late["p.state"] = (2, 1, {"cleanup.policy": "delete", "retention.ms": "604800000"})
    with pytest.raises(TopicDriftError, match=r"p.state has cleanup.policy=delete, expected compact"):
        asyncio.run(create_topics("b:1", Topics("p"), 2))
    admin.topics.clear()
    admin.late["p.state"] = (2, 1, {"cleanup.policy": "compact", "retention.ms": "-1"})
    assert "p.state" not in asyncio.run(create_topics("b:1", Topics("p"), 2))


def test_create_does_not_refuse_over_other_drift(admin: FakeAdmin) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    config = admin.topics["p.tasks"][2]
    admin.topics["p.tasks"] = (2, 1, {**config, "retention.ms": "1000", "cleanup.policy": "delete"})
    assert asyncio.run(create_topics("b:1", Topics("p"), 2)) == []


# --- drift ----------------------------------------------------------------------------------------------------


def test_drift_lists_every_difference(admin: FakeAdmin) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    admin.topics["p.inbox"] = (3, 1, {"cleanup.policy": "compact,delete", "retention.ms": "604800000"})
    drift = asyncio.run(check_topics("b:1", Topics("p"), 2))
    assert [(d.topic, d.setting, d.expected, d.actual) for d in drift] == [
        ("p.inbox", "partitions", "2", "3"),
        ("p.inbox", "cleanup.policy", "delete", "compact,delete"),
        ("p.inbox", "retention.ms", str(DEFAULT_RETENTION_MS), "604800000"),
        ("p.inbox", "min.insync.replicas", "1", "unset"),
    ]
    assert str(drift[0]) == "p.inbox has partitions=3, expected 2"
    assert str(TopicDrift("s", "missing", "", "")) == "s is missing"


def test_cleanup_policies_compare_as_sets(admin: FakeAdmin) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    admin.topics["p.history"][2]["cleanup.policy"] = "delete, compact"
    admin.topics["p.state"][2]["cleanup.policy"] = "compact"
    drift = asyncio.run(check_topics("b:1", Topics("p"), 2))
    assert [(d.topic, d.setting) for d in drift] == [("p.history", "cleanup.policy")]
    admin.topics["p.history"][2]["cleanup.policy"] = "delete"
    admin.topics["p.timer-index"][2]["cleanup.policy"] = "delete,compact"
    drift = asyncio.run(check_topics("b:1", Topics("p"), 2))
    assert [(d.topic, d.setting, d.actual) for d in drift] == [("p.timer-index", "cleanup.policy", "delete,compact")]


def test_check_reports_missing_topics_and_changed_retention(admin: FakeAdmin) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    assert asyncio.run(check_topics("b:1", Topics("p"), 2)) == []
    del admin.topics["p.dlq"]
    admin.topics["p.timers"][2]["retention.ms"] = "3600000"
    drift = asyncio.run(check_topics("b:1", Topics("p"), 2))
    assert [(d.topic, d.setting) for d in drift] == [("p.timers", "retention.ms"), ("p.dlq", "missing")]
    # with another configured retention the timers now match and the others drift
    drift = asyncio.run(check_topics("b:1", Topics("p"), 2, retention_ms=3_600_000))
    assert {d.topic for d in drift} == {"p.inbox", "p.tasks", "p.completions", "p.dlq"}


def test_check_expects_the_automatic_factor_of_the_cluster_it_sees(admin: FakeAdmin) -> None:
    asyncio.run(create_topics("b:1", Topics("p"), 2))  # one broker: factor 1
    admin.brokers = 3  # the cluster grew
    drift = asyncio.run(check_topics("b:1", Topics("p"), 2))
    assert {d.setting for d in drift} == {"replication.factor", "min.insync.replicas"}
    assert len(drift) == 2 * len(TOPIC_SPECS)


# --- internal topics ------------------------------------------------------------------------------------------


def test_an_internal_topic_is_created_with_the_replication_of_its_companion(admin: FakeAdmin) -> None:
    admin.brokers = 3
    asyncio.run(create_topics("b:1", Topics("p"), 2))
    del admin.topics["p.timer-index"]
    admin.created.clear()
    asyncio.run(TimerChangelog("b:1", Topics("p"), RecordCodec()).ensure_topic())
    (made,) = admin.created
    assert (made.name, made.num_partitions, made.replication_factor) == ("p.timer-index", 2, 3)
    assert made.topic_configs == {"cleanup.policy": "compact", "retention.ms": "-1", "min.insync.replicas": "2"}


# --- the CLI --------------------------------------------------------------------------------------------------


def test_topics_check_prints_drift_and_exits_1(
    admin: FakeAdmin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFLOW_TOPIC_PREFIX", "p")
    monkeypatch.setenv("KFLOW_PARTITIONS", "2")
    settings = Settings.from_env()
    asyncio.run(create_topics("b:1", Topics("p"), settings.partitions))
    assert main(["topics", "check"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [[n, "ok"] for n in Topics("p").all()]
    admin.topics["p.inbox"][2]["retention.ms"] = "1000"
    assert main(["topics", "check", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == [
        {"topic": "p.inbox", "setting": "retention.ms", "expected": str(DEFAULT_RETENTION_MS), "actual": "1000"}
    ]
    del admin.topics["p.dlq"]
    assert main(["topics", "check"]) == 1
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["p.inbox"] == f"retention.ms=1000 (expected {DEFAULT_RETENTION_MS})"
    assert lines["p.dlq"] == "missing" and lines["p.tasks"] == "ok"


def test_topics_create_refusing_is_one_line_and_exit_1(
    admin: FakeAdmin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFLOW_TOPIC_PREFIX", "p")
    monkeypatch.setenv("KFLOW_PARTITIONS", "2")
    monkeypatch.setenv("KFLOW_RETENTION", "7d")
    assert main(["topics", "create", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"topic": n, "created": True} for n in Topics("p").all()]
    assert admin.topics["p.tasks"][2]["retention.ms"] == "604800000"
    monkeypatch.setenv("KFLOW_PARTITIONS", "3")
    assert main(["topics", "create"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kflow: error: existing topics differ") and err.count("\n") == 1
    assert "p.inbox has partitions=2, expected 3" in err
