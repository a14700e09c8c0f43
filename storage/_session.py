"""Connections to Cassandra: one cluster object per process, prepared statements, async execution."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy

from storage._errors import StorageError

log = logging.getLogger(__name__)

_KEYSPACE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$")


@dataclass(frozen=True, slots=True)
class CassandraTarget:
    """Where a Cassandra node listens and which datacenter is local to us."""

    host: str = "127.0.0.1"
    port: int = 9042
    local_dc: str = "datacenter1"


class CassandraConnection:
    """A connected driver session; close it when done (also a context manager).

    Raises:
        StorageError: when no node answers within ``connect_timeout`` seconds.
    """

    def __init__(self, target: CassandraTarget, *, connect_timeout: float = 5.0, request_timeout: float = 10.0) -> None:
        profile = ExecutionProfile(
            # quorum writes (materializer) and quorum reads (client, ops CLI) overlap at any replication
            # factor; with one replica (the local default) it is the same as ONE
            consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            request_timeout=request_timeout,
            load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=target.local_dc),
        )
        self._cluster = Cluster(
            [target.host],
            port=target.port,
            protocol_version=5,
            connect_timeout=connect_timeout,
            control_connection_timeout=connect_timeout,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        )
        try:
            self.session: Session = self._cluster.connect()
        except (NoHostAvailable, OSError) as exc:
            self._cluster.shutdown()
            raise StorageError(f"Cassandra at {target.host}:{target.port} is unreachable: {exc}") from exc

    def release_version(self) -> str:
        """The server's version, read from ``system.local`` (a real query round trip)."""
        row = self.session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)

    def ensure_keyspace(self, name: str, replication: dict[str, Any] | None = None) -> None:
        """Create keyspace ``name`` if it does not exist (default: SimpleStrategy, one replica)."""
        if not _KEYSPACE_NAME.match(name):
            raise StorageError(f"invalid keyspace name {name!r}: letters, digits and _ only, max 48")
        replication = replication or {"class": "SimpleStrategy", "replication_factor": 1}
        options = ", ".join(f"'{key}': {value!r}" for key, value in replication.items())
        self.session.execute(f"CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = {{{options}}}")

    def close(self) -> None:
        """Shut the driver's connections and threads down."""
        self._cluster.shutdown()

    def __enter__(self) -> CassandraConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
