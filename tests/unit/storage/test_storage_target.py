"""CassandraTarget and CassandraConnection without a server: contact points, local datacenter, consistency
levels of reads and writes, keyspace replication (a fake driver ``Cluster`` records what it was given)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from storage import CassandraConnection, CassandraTarget, HistoryWriter, RunStore, StorageError, parse_replication


@dataclass
class _Session:
    executed: list[str] = field(default_factory=list)

    def execute(self, query: str, *args: object) -> Any:
        self.executed.append(query)
        return SimpleNamespace(one=lambda: None)

    def prepare(self, query: str) -> SimpleNamespace:
        return SimpleNamespace(query=query, consistency_level=None)


class _Cluster:
    made: ClassVar[list[_Cluster]] = []

    def __init__(self, contact_points: list[tuple[str, int]], **options: Any) -> None:
        self.contact_points = contact_points
        self.options = options
        self.session = _Session()
        _Cluster.made.append(self)

    def connect(self) -> _Session:
        return self.session

    def shutdown(self) -> None:
        pass


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> type[_Cluster]:
    _Cluster.made.clear()
    monkeypatch.setattr("storage._session.Cluster", _Cluster)
    return _Cluster


def _profile(made: _Cluster) -> Any:
    return made.options["execution_profiles"][EXEC_PROFILE_DEFAULT]


def test_the_default_target_is_one_local_node(cluster: type[_Cluster]) -> None:
    conn = CassandraConnection(CassandraTarget())
    (made,) = cluster.made
    assert made.contact_points == [("127.0.0.1", 9042)]
    profile = _profile(made)
    assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert (conn.read_consistency, conn.write_consistency) == (ConsistencyLevel.LOCAL_QUORUM,) * 2
    assert isinstance(profile.load_balancing_policy, TokenAwarePolicy)
    dc_aware = profile.load_balancing_policy._child_policy
    assert isinstance(dc_aware, DCAwareRoundRobinPolicy) and not dc_aware.local_dc  # the driver picks it


def test_several_contact_points_a_local_dc_and_consistency_levels(cluster: type[_Cluster]) -> None:
    target = CassandraTarget.of(
        [("c1", 9042), ("c2", 9142), ("c3", 9042)],
        local_dc="dc-east",
        read_consistency="LOCAL_ONE",
        write_consistency="QUORUM",
    )
    assert target.contact_points == [("c1", 9042), ("c2", 9142), ("c3", 9042)]
    conn = CassandraConnection(target)
    (made,) = cluster.made
    assert made.contact_points == [("c1", 9042), ("c2", 9142), ("c3", 9042)]
    assert _profile(made).consistency_level == ConsistencyLevel.LOCAL_ONE  # reads (the session's default)
    assert _profile(made).load_balancing_policy._child_policy.local_dc == "dc-east"
    assert conn.write_consistency == ConsistencyLevel.QUORUM


def test_writes_carry_the_write_consistency_and_reads_the_sessions(cluster: type[_Cluster]) -> None:
    conn = CassandraConnection(CassandraTarget(read_consistency="ONE", write_consistency="ALL"))
    writer = HistoryWriter(conn, "ks")
    statements = {name: value for name, value in vars(writer).items() if hasattr(value, "consistency_level")}
    assert statements.pop("_lookup").consistency_level is None  # a read: the session's level (ONE)
    assert statements and {s.consistency_level for s in statements.values()} == {ConsistencyLevel.ALL}
    store = RunStore(conn, "ks")
    assert store._get_run.consistency_level is None and store._get_events.consistency_level is None
    assert store._delete_events.consistency_level == store._mark_compacted.consistency_level == ConsistencyLevel.ALL


def test_an_unreachable_target_names_every_contact_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from cassandra.cluster import NoHostAvailable

    class Down(_Cluster):
        def connect(self) -> _Session:
            raise NoHostAvailable("Unable to connect to any servers", {})

    monkeypatch.setattr("storage._session.Cluster", Down)
    with pytest.raises(StorageError, match=r"^Cassandra at a:1,b:2 is unreachable") as caught:
        CassandraConnection(CassandraTarget.of([("a", 1), ("b", 2)]))
    assert caught.value.unreachable


def test_keyspace_replication_from_the_target_unless_given(cluster: type[_Cluster]) -> None:
    conn = CassandraConnection(CassandraTarget(replication=parse_replication("NetworkTopologyStrategy:dc1=3,dc2=2")))
    conn.ensure_keyspace("ks")
    conn.ensure_keyspace("other", {"class": "SimpleStrategy", "replication_factor": 2})
    executed = cluster.made[0].session.executed
    assert executed == [
        "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}",
        "CREATE KEYSPACE IF NOT EXISTS other WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 2}",
    ]
    CassandraConnection(CassandraTarget()).ensure_keyspace("plain")
    assert cluster.made[1].session.executed == [
        "CREATE KEYSPACE IF NOT EXISTS plain WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    ]
    with pytest.raises(StorageError, match="keyspace bad: replication dc1 must be a positive integer"):
        conn.ensure_keyspace("bad", {"class": "NetworkTopologyStrategy", "dc1": "three'"})


def test_replication_parsing() -> None:
    assert parse_replication('{"class": "NetworkTopologyStrategy", "datacenter1": 1}') == (
        ("class", "NetworkTopologyStrategy"),
        ("datacenter1", 1),
    )
    assert parse_replication("SimpleStrategy:2") == (("class", "SimpleStrategy"), ("replication_factor", 2))
    assert parse_replication("NetworkTopologyStrategy:a=1,b=2") == (
        ("class", "NetworkTopologyStrategy"),
        ("a", 1),
        ("b", 2),
    )
    with pytest.raises(ValueError, match="names no replica count"):
        parse_replication("NetworkTopologyStrategy:")


def test_a_target_checks_its_consistency_levels_and_contact_points() -> None:
    with pytest.raises(ValueError, match="unknown consistency level 'SERIAL'"):
        CassandraTarget(read_consistency="SERIAL")
    with pytest.raises(ValueError, match="at least one contact point"):
        CassandraTarget.of([])
