"""The production-cluster settings: replication factor, work-topic retention, Cassandra contact points, local
datacenter, keyspace replication and consistency levels, each parsed from its ``KFLOW_*`` variable."""

from __future__ import annotations

import pytest

from engine import KflowError
from storage import CassandraTarget
from streams import Settings
from streams.cli import build_parser

DEFAULT_RETENTION_MS = 30 * 86_400_000
NEW = (
    "KFLOW_REPLICATION_FACTOR",
    "KFLOW_RETENTION",
    "KFLOW_CASSANDRA_LOCAL_DC",
    "KFLOW_CASSANDRA_REPLICATION",
    "KFLOW_CASSANDRA_CONSISTENCY",
    "KFLOW_ACTIVATION_STEPS",
)


def test_defaults_keep_the_single_node_behaviour() -> None:
    settings = Settings.from_env({})
    assert settings.replication_factor is None  # chosen from the broker count at create time
    assert settings.retention_ms == DEFAULT_RETENTION_MS
    assert settings.cassandra_points == (("127.0.0.1", 9042),)
    assert settings.cassandra_host_port == ("127.0.0.1", 9042)
    assert settings.cassandra_target() == CassandraTarget("127.0.0.1", 9042)
    target = settings.cassandra_target()
    assert (target.local_dc, target.read_consistency, target.write_consistency) == (
        None,
        "LOCAL_QUORUM",
        "LOCAL_QUORUM",
    )
    assert target.replication_map() == {"class": "SimpleStrategy", "replication_factor": 1}
    assert Settings() == settings.__class__(home=settings.home)


def test_the_activation_budget_is_a_positive_count() -> None:
    assert Settings.from_env({}).activation_steps == 1_000_000
    assert Settings.from_env({"KFLOW_ACTIVATION_STEPS": "5000"}).activation_steps == 5000
    for bad in ("0", "-3", "many"):
        with pytest.raises(KflowError, match="KFLOW_ACTIVATION_STEPS"):
            Settings.from_env({"KFLOW_ACTIVATION_STEPS": bad})


def test_every_new_variable_is_listed_in_the_help() -> None:
    text = build_parser().epilog or ""
    assert all(f"  {name} " in text for name in NEW)


@pytest.mark.parametrize(("raw", "factor"), [("1", 1), ("3", 3), (" 5 ", 5), ("", None)])
def test_replication_factor(raw: str, factor: int | None) -> None:
    assert Settings.from_env({"KFLOW_REPLICATION_FACTOR": raw}).replication_factor == factor


@pytest.mark.parametrize(
    ("raw", "says"),
    [("0", "at least 1, got 0"), ("three", "must be an integer"), ("-1", "at least 1")],
)
def test_bad_replication_factor(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"KFLOW_REPLICATION_FACTOR.*{says}"):
        Settings.from_env({"KFLOW_REPLICATION_FACTOR": raw})


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        ("-1", -1),
        ("30d", 30 * 86_400_000),
        ("7d", 604_800_000),
        ("2w", 1_209_600_000),
        ("36h", 129_600_000),
        ("1h", 3_600_000),
    ],
)
def test_retention(raw: str, ms: int) -> None:
    assert Settings.from_env({"KFLOW_RETENTION": raw}).retention_ms == ms


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("forever", "must be -1 \\(unbounded\\) or a duration"),
        ("604800000", "must be -1 \\(unbounded\\) or a duration"),  # bare numbers: seconds or ms? refused
        ("-2", "must be -1"),
        ("59m", "must be at least 1h"),
        ("0s", "must be at least 1h"),
    ],
)
def test_bad_retention(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"^KFLOW_RETENTION {says}"):
        Settings.from_env({"KFLOW_RETENTION": raw})


def test_several_contact_points() -> None:
    settings = Settings.from_env({"KFLOW_CASSANDRA": "c1:9142, c2 ,10.0.0.3:9043,[::1]:9044,::2"})
    assert settings.cassandra_points == (
        ("c1", 9142),
        ("c2", 9042),
        ("10.0.0.3", 9043),
        ("::1", 9044),
        ("::2", 9042),
    )
    assert settings.cassandra_host_port == ("c1", 9142)  # the first, for the callers that take one
    target = settings.cassandra_target()
    assert (target.host, target.port) == ("c1", 9142)
    assert target.contact_points == list(settings.cassandra_points)
    assert target.describe() == "c1:9142,c2:9042,10.0.0.3:9043,::1:9044,::2:9042"


@pytest.mark.parametrize("raw", ["host:port", "a,,b", "a:0", "a:70000", ":9042", "[::1]x", ""])
def test_bad_contact_points_are_one_line_settings_errors(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^KFLOW_CASSANDRA must be host") as caught:
        Settings.from_env({"KFLOW_CASSANDRA": raw})
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, KflowError) and type(caught.value).__name__ == "SettingsError"


def test_local_dc() -> None:
    assert Settings.from_env({"KFLOW_CASSANDRA_LOCAL_DC": "eu-west"}).cassandra_target().local_dc == "eu-west"
    assert Settings.from_env({"KFLOW_CASSANDRA_LOCAL_DC": " "}).cassandra_local_dc is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            '{"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": "2"}',
            {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2},
        ),
        ("NetworkTopologyStrategy:datacenter1=1", {"class": "NetworkTopologyStrategy", "datacenter1": 1}),
        ("NetworkTopologyStrategy: dc1=3, dc2=3", {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 3}),
        ("SimpleStrategy:3", {"class": "SimpleStrategy", "replication_factor": 3}),
        ("SimpleStrategy:replication_factor=2", {"class": "SimpleStrategy", "replication_factor": 2}),
    ],
)
def test_keyspace_replication(raw: str, expected: dict[str, object]) -> None:
    settings = Settings.from_env({"KFLOW_CASSANDRA_REPLICATION": raw})
    assert settings.cassandra_target().replication_map() == expected
    assert next(iter(settings.cassandra_target().replication_map())) == "class"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{nope", "not valid JSON"),
        ("[1]", "must be an object"),
        ('{"dc1": 3}', "needs a class"),
        ("NetworkTopologyStrategy", "names no replica count"),
        ("NetworkTopologyStrategy:dc1", "is not name=count"),
        ("NetworkTopologyStrategy:dc1=0", "dc1 must be a positive integer"),
        ("NetworkTopologyStrategy:dc1=x", "dc1 must be a positive integer"),
        ("NetworkTopologyStrategy:'dc=1", "invalid replication option name"),
        ("Bad Class:dc1=1", "invalid replication class"),
    ],
)
def test_bad_keyspace_replication(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"^KFLOW_CASSANDRA_REPLICATION: .*{says}"):
        Settings.from_env({"KFLOW_CASSANDRA_REPLICATION": raw})


@pytest.mark.parametrize(
    ("raw", "levels"),
    [
        ("LOCAL_QUORUM", ("LOCAL_QUORUM", "LOCAL_QUORUM")),
        ("one", ("ONE", "ONE")),
        ("read=LOCAL_ONE,write=ALL", ("LOCAL_ONE", "ALL")),
        ("write=QUORUM", ("LOCAL_QUORUM", "QUORUM")),
        (" read = ONE ", ("ONE", "LOCAL_QUORUM")),
    ],
)
def test_consistency(raw: str, levels: tuple[str, str]) -> None:
    target = Settings.from_env({"KFLOW_CASSANDRA_CONSISTENCY": raw}).cassandra_target()
    assert (target.read_consistency, target.write_consistency) == levels


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("ANY", "unknown consistency level 'ANY'"),
        ("SERIAL", "unknown"),
        ("reads=ONE", "must be LEVEL or"),
        ("", "unknown"),
    ],
)
def test_bad_consistency(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"^KFLOW_CASSANDRA_CONSISTENCY.*{says}"):
        Settings.from_env({"KFLOW_CASSANDRA_CONSISTENCY": raw})
