"""Settings read from ``KFLOW_*`` environment variables (docs/api.md, "Configuration"), once, by the composition
root."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams._errors import SettingsError


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


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
        event_soft_limit / event_hard_limit: the orchestrator's default history-length limits per run
            (``KFLOW_EVENT_SOFT_LIMIT``, ``KFLOW_EVENT_HARD_LIMIT``); ``@workflow(event_limits=…)`` wins.
    """

    bootstrap: str = "127.0.0.1:9092"
    cassandra: str = "127.0.0.1:9042"
    keyspace: str = "kflow"
    topic_prefix: str = "kflow"
    partitions: int = 4
    secret: bytes | None = None
    home: Path = Path.home() / ".cache" / "kflow"
    event_soft_limit: int = 10_000
    event_hard_limit: int = 50_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); the variables are listed in ``ENVIRONMENT``.

        Raises:
            SettingsError: a bad value (also a ``ValueError``); the message names the variable.
        """
        env = os.environ if env is None else env
        partitions = _positive_int(env, "KFLOW_PARTITIONS", _DEFAULTS.partitions)
        soft = _positive_int(env, "KFLOW_EVENT_SOFT_LIMIT", _DEFAULTS.event_soft_limit)
        hard = _positive_int(env, "KFLOW_EVENT_HARD_LIMIT", _DEFAULTS.event_hard_limit)
        if soft > hard:
            raise SettingsError(f"KFLOW_EVENT_SOFT_LIMIT ({soft}) is above KFLOW_EVENT_HARD_LIMIT ({hard})")
        secret = env.get("KFLOW_SECRET")
        return cls(
            bootstrap=env.get("KFLOW_BOOTSTRAP", _DEFAULTS.bootstrap),
            cassandra=env.get("KFLOW_CASSANDRA", _DEFAULTS.cassandra),
            keyspace=env.get("KFLOW_KEYSPACE", _DEFAULTS.keyspace),
            topic_prefix=env.get("KFLOW_TOPIC_PREFIX", _DEFAULTS.topic_prefix),
            partitions=partitions,
            secret=secret.encode() if secret else None,
            home=Path(env["KFLOW_HOME"]) if env.get("KFLOW_HOME") else _default_home(env),
            event_soft_limit=soft,
            event_hard_limit=hard,
        )

    @property
    def cassandra_host_port(self) -> tuple[str, int]:
        """``KFLOW_CASSANDRA`` split into host and port (default port 9042)."""
        host, _, port = self.cassandra.rpartition(":")
        if not host:
            return self.cassandra, 9042
        if not port.isdigit():
            raise SettingsError(f"KFLOW_CASSANDRA must be host or host:port, got {self.cassandra!r}")
        return host, int(port)


_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One ``KFLOW_*`` variable ``Settings.from_env`` reads: its name, its default in words, what it sets."""

    name: str
    default: str
    meaning: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar("KFLOW_BOOTSTRAP", _DEFAULTS.bootstrap, "Kafka bootstrap servers"),
    EnvVar("KFLOW_CASSANDRA", _DEFAULTS.cassandra, "Cassandra contact point host:port"),
    EnvVar("KFLOW_KEYSPACE", _DEFAULTS.keyspace, "Cassandra keyspace"),
    EnvVar("KFLOW_TOPIC_PREFIX", _DEFAULTS.topic_prefix, "prefix of every topic name (<prefix>.inbox, …)"),
    EnvVar("KFLOW_PARTITIONS", str(_DEFAULTS.partitions), "partition count of the topics kflow creates"),
    EnvVar("KFLOW_SECRET", "unset", "HMAC key of the cloudpickle payload codec (off while unset)"),
    EnvVar("KFLOW_HOME", "$XDG_CACHE_HOME/kflow or ~/.cache/kflow", "server jars and local server data"),
    EnvVar("KFLOW_EVENT_SOFT_LIMIT", str(_DEFAULTS.event_soft_limit), "history length that logs a warning per run"),
    EnvVar("KFLOW_EVENT_HARD_LIMIT", str(_DEFAULTS.event_hard_limit), "history length at which a run fails"),
)
"""Every variable ``Settings.from_env`` reads, in the order ``kflow --help`` lists them."""
