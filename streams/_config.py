"""Settings read from ``KFLOW_*`` environment variables (API.md §4), once, by the composition root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


def _default_home(env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kflow"


@dataclass(frozen=True, slots=True)
class Settings:
    """Where kflow finds its servers and how it names what it creates there.

    Attributes:
        bootstrap: Kafka bootstrap servers (``KFLOW_BOOTSTRAP``).
        cassandra: Cassandra contact point ``host:port`` (``KFLOW_CASSANDRA``).
        keyspace: Cassandra keyspace (``KFLOW_KEYSPACE``).
        topic_prefix: prefix of every topic name (``KFLOW_TOPIC_PREFIX``).
        partitions: partition count of every topic kflow creates (``KFLOW_PARTITIONS``).
        secret: HMAC key for the cloudpickle payload codec (``KFLOW_SECRET``); None disables it.
        home: cache folder for server jars and the local servers' data (``KFLOW_HOME``).
    """

    bootstrap: str = "127.0.0.1:9092"
    cassandra: str = "127.0.0.1:9042"
    keyspace: str = "kflow"
    topic_prefix: str = "kflow"
    partitions: int = 4
    secret: bytes | None = None
    home: Path = Path.home() / ".cache" / "kflow"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); raises ValueError on a bad value."""
        env = os.environ if env is None else env
        raw_partitions = env.get("KFLOW_PARTITIONS", "4")
        try:
            partitions = int(raw_partitions)
        except ValueError:
            raise ValueError(f"KFLOW_PARTITIONS must be an integer, got {raw_partitions!r}") from None
        if partitions < 1:
            raise ValueError(f"KFLOW_PARTITIONS must be at least 1, got {partitions}")
        secret = env.get("KFLOW_SECRET")
        return cls(
            bootstrap=env.get("KFLOW_BOOTSTRAP", _DEFAULTS.bootstrap),
            cassandra=env.get("KFLOW_CASSANDRA", _DEFAULTS.cassandra),
            keyspace=env.get("KFLOW_KEYSPACE", _DEFAULTS.keyspace),
            topic_prefix=env.get("KFLOW_TOPIC_PREFIX", _DEFAULTS.topic_prefix),
            partitions=partitions,
            secret=secret.encode() if secret else None,
            home=Path(env["KFLOW_HOME"]) if env.get("KFLOW_HOME") else _default_home(env),
        )

    @property
    def cassandra_host_port(self) -> tuple[str, int]:
        """``KFLOW_CASSANDRA`` split into host and port (default port 9042)."""
        host, _, port = self.cassandra.rpartition(":")
        if not host:
            return self.cassandra, 9042
        return host, int(port)


_DEFAULTS = Settings()
