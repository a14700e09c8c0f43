"""Settings read from ``KFLOW_*`` environment variables (docs/api.md, "Configuration"), once, by the composition
root."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine import InvalidDurationError
from engine.runtime import parse_duration
from storage import CONSISTENCY_LEVELS, CassandraTarget, parse_replication
from streams._errors import SettingsError
from streams._topics import DEFAULT_RETENTION_MS

_MIN_RETENTION_MS = 3_600_000
DEFAULT_CONSISTENCY = CassandraTarget().read_consistency  # LOCAL_QUORUM

Replication = tuple[tuple[str, str | int], ...]
"""A keyspace replication as ordered ``(option, value)`` pairs (``storage.parse_replication``)."""


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


def parse_retention(raw: str, name: str = "KFLOW_RETENTION") -> int:
    """``retention.ms`` from ``-1`` (unbounded) or a duration of at least an hour (``30d``, ``2w``, ``36h``).

    Raises:
        SettingsError: anything else (the message names ``name``).
    """
    text = raw.strip()
    if text == "-1":
        return -1
    try:
        ms = parse_duration(text) if text and not text.isdigit() else None
    except InvalidDurationError:
        ms = None
    if ms is None:
        raise SettingsError(f"{name} must be -1 (unbounded) or a duration such as 30d, 2w or 36h, got {raw!r}")
    if ms < _MIN_RETENTION_MS:
        raise SettingsError(f"{name} must be at least 1h (or -1 for unbounded), got {raw!r}")
    return ms


def parse_contact_points(raw: str, name: str = "KFLOW_CASSANDRA") -> tuple[tuple[str, int], ...]:
    """Comma-separated ``host[:port]`` contact points (port 9042 when omitted; ``[v6]:port`` for IPv6).

    Raises:
        SettingsError: an empty list, an empty host, a port that is not a number in 1..65535.
    """
    points: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            raise SettingsError(f"{name} must be host[:port] contact points separated by commas, got {raw!r}")
        if part.startswith("["):  # [::1]:9042
            host, _, rest = part[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
        elif part.count(":") == 1:
            host, _, port = part.partition(":")
        else:  # a name, an IPv4 address, or a bare IPv6 address (no port)
            host, port = part, ""
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise SettingsError(f"{name} must be host or host:port (comma-separated), got {part!r}")
        points.append((host, int(port) if port else 9042))
    return tuple(points)


def parse_consistency(raw: str, name: str = "KFLOW_CASSANDRA_CONSISTENCY") -> tuple[str, str]:
    """``(read, write)`` consistency level names from ``LEVEL`` (both) or ``read=LEVEL,write=LEVEL`` (either
    may be left out: it stays ``LOCAL_QUORUM``); names are case-insensitive.

    Raises:
        SettingsError: an unknown level or key.
    """
    levels = {"read": DEFAULT_CONSISTENCY, "write": DEFAULT_CONSISTENCY}
    text = raw.strip()
    parts = [(p.partition("=")[0].strip().lower(), p.partition("=")[2].strip()) for p in text.split(",")]
    if "=" not in text:
        parts = [("read", text), ("write", text)]
    for key, level in parts:
        if key not in levels:
            raise SettingsError(f"{name} must be LEVEL or read=LEVEL,write=LEVEL, got {raw!r}")
        if level.upper() not in CONSISTENCY_LEVELS:
            raise SettingsError(f"{name}: unknown consistency level {level!r} (one of {', '.join(CONSISTENCY_LEVELS)})")
        levels[key] = level.upper()
    return levels["read"], levels["write"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Where kflow finds its servers and how it names what it creates there.

    Attributes:
        bootstrap: Kafka bootstrap servers (``KFLOW_BOOTSTRAP``).
        cassandra: Cassandra contact points, ``host[:port]`` separated by commas (``KFLOW_CASSANDRA``).
        keyspace: Cassandra keyspace (``KFLOW_KEYSPACE``).
        topic_prefix: prefix of every topic name (``KFLOW_TOPIC_PREFIX``).
        partitions: partition count of every topic kflow creates (``KFLOW_PARTITIONS``).
        secret: HMAC key for the cloudpickle payload codec (``KFLOW_SECRET``); None disables it.
        home: cache folder for server jars and the local servers' data (``KFLOW_HOME``).
        event_soft_limit / event_hard_limit: the orchestrator's default history-length limits per run
            (``KFLOW_EVENT_SOFT_LIMIT``, ``KFLOW_EVENT_HARD_LIMIT``); ``@workflow(event_limits=…)`` wins.
        event_warning_interval: past the soft limit, the warning repeats every this many events
            (``KFLOW_EVENT_WARNING_INTERVAL``).
        activation_steps: the orchestrator's default budget of event-loop callbacks per workflow activation
            (``KFLOW_ACTIVATION_STEPS``): past it the run fails with ``ActivationBudgetExceededError``.
        replication_factor: replication factor of the topics kflow creates (``KFLOW_REPLICATION_FACTOR``);
            None: 3 when the cluster has at least 3 brokers, else 1. ``min.insync.replicas`` is one less
            (at least 1).
        retention_ms: ``retention.ms`` of ``.inbox``, ``.tasks``, ``.timers``, ``.completions`` and ``.dlq``
            (``KFLOW_RETENTION``); -1: unbounded.
        cassandra_local_dc: the local datacenter (``KFLOW_CASSANDRA_LOCAL_DC``); None: the driver's default.
        cassandra_replication: replication of the keyspace kflow creates (``KFLOW_CASSANDRA_REPLICATION``);
            empty: SimpleStrategy with one replica.
        cassandra_read_consistency / cassandra_write_consistency: consistency levels of reads and writes
            (``KFLOW_CASSANDRA_CONSISTENCY``).
        dev_port_offset: added to every port of the ``kflow dev`` servers (``KFLOW_DEV_PORT_OFFSET``), for a
            second local stack beside the default one; None (unset): the offset the stack was started with, else 0.
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
    event_warning_interval: int = 100
    activation_steps: int = 1_000_000
    replication_factor: int | None = None
    retention_ms: int = DEFAULT_RETENTION_MS
    cassandra_local_dc: str | None = None
    cassandra_replication: Replication = ()
    cassandra_read_consistency: str = DEFAULT_CONSISTENCY
    cassandra_write_consistency: str = DEFAULT_CONSISTENCY
    dev_port_offset: int | None = None

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
        offset = env.get("KFLOW_DEV_PORT_OFFSET", "").strip()  # unset or empty: the stack's remembered offset
        if offset and not offset.isdigit():
            raise SettingsError(f"KFLOW_DEV_PORT_OFFSET must be a non-negative integer, got {offset!r}")
        cassandra = env.get("KFLOW_CASSANDRA", _DEFAULTS.cassandra)
        parse_contact_points(cassandra)
        replication = env.get("KFLOW_CASSANDRA_REPLICATION", "").strip()
        try:
            keyspace_replication = parse_replication(replication) if replication else ()
        except ValueError as exc:
            raise SettingsError(f"KFLOW_CASSANDRA_REPLICATION: {exc}") from None
        read, write = parse_consistency(env.get("KFLOW_CASSANDRA_CONSISTENCY", DEFAULT_CONSISTENCY))
        factor = env.get("KFLOW_REPLICATION_FACTOR", "").strip()  # unset or empty: chosen from the broker count
        retention = env.get("KFLOW_RETENTION", "").strip()
        return cls(
            bootstrap=env.get("KFLOW_BOOTSTRAP", _DEFAULTS.bootstrap),
            cassandra=cassandra,
            keyspace=env.get("KFLOW_KEYSPACE", _DEFAULTS.keyspace),
            topic_prefix=env.get("KFLOW_TOPIC_PREFIX", _DEFAULTS.topic_prefix),
            partitions=partitions,
            secret=secret.encode() if secret else None,
            home=Path(env["KFLOW_HOME"]) if env.get("KFLOW_HOME") else _default_home(env),
            event_soft_limit=soft,
            event_hard_limit=hard,
            event_warning_interval=_positive_int(env, "KFLOW_EVENT_WARNING_INTERVAL", _DEFAULTS.event_warning_interval),
            activation_steps=_positive_int(env, "KFLOW_ACTIVATION_STEPS", _DEFAULTS.activation_steps),
            replication_factor=_positive_int(env, "KFLOW_REPLICATION_FACTOR", 1) if factor else None,
            retention_ms=parse_retention(retention) if retention else DEFAULT_RETENTION_MS,
            cassandra_local_dc=env.get("KFLOW_CASSANDRA_LOCAL_DC", "").strip() or None,
            cassandra_replication=keyspace_replication,
            cassandra_read_consistency=read,
            cassandra_write_consistency=write,
            dev_port_offset=int(offset) if offset else None,
        )

    @property
    def cassandra_points(self) -> tuple[tuple[str, int], ...]:
        """``KFLOW_CASSANDRA`` as ``(host, port)`` contact points (default port 9042)."""
        return parse_contact_points(self.cassandra)

    @property
    def cassandra_host_port(self) -> tuple[str, int]:
        """The first contact point of ``KFLOW_CASSANDRA`` as host and port (default port 9042)."""
        return self.cassandra_points[0]

    def cassandra_target(self) -> CassandraTarget:
        """Every Cassandra setting as a ``CassandraTarget``: contact points, local datacenter, consistency
        levels and the replication of a keyspace created through it."""
        return CassandraTarget.of(
            self.cassandra_points,
            local_dc=self.cassandra_local_dc,
            read_consistency=self.cassandra_read_consistency,
            write_consistency=self.cassandra_write_consistency,
            replication=self.cassandra_replication,
        )


_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One ``KFLOW_*`` variable ``Settings.from_env`` reads: its name, its default in words, what it sets."""

    name: str
    default: str
    meaning: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar("KFLOW_BOOTSTRAP", _DEFAULTS.bootstrap, "Kafka bootstrap servers"),
    EnvVar("KFLOW_CASSANDRA", _DEFAULTS.cassandra, "Cassandra contact points host[:port], comma-separated"),
    EnvVar("KFLOW_KEYSPACE", _DEFAULTS.keyspace, "Cassandra keyspace"),
    EnvVar("KFLOW_TOPIC_PREFIX", _DEFAULTS.topic_prefix, "prefix of every topic name (<prefix>.inbox, …)"),
    EnvVar("KFLOW_PARTITIONS", str(_DEFAULTS.partitions), "partition count of the topics kflow creates"),
    EnvVar(
        "KFLOW_REPLICATION_FACTOR",
        "3 with >= 3 brokers, else 1",
        "replication factor of the topics kflow creates (min.insync.replicas: one less, at least 1)",
    ),
    EnvVar("KFLOW_RETENTION", "30d", "retention of .inbox, .tasks, .timers, .completions, .dlq (-1: unbounded)"),
    EnvVar("KFLOW_SECRET", "unset", "HMAC key of the cloudpickle payload codec (off while unset)"),
    EnvVar("KFLOW_HOME", "$XDG_CACHE_HOME/kflow or ~/.cache/kflow", "server jars and local server data"),
    EnvVar("KFLOW_EVENT_SOFT_LIMIT", str(_DEFAULTS.event_soft_limit), "history length that logs a warning per run"),
    EnvVar("KFLOW_EVENT_HARD_LIMIT", str(_DEFAULTS.event_hard_limit), "history length at which a run fails"),
    EnvVar(
        "KFLOW_EVENT_WARNING_INTERVAL",
        str(_DEFAULTS.event_warning_interval),
        "past the soft limit, the warning repeats every this many events",
    ),
    EnvVar(
        "KFLOW_ACTIVATION_STEPS",
        str(_DEFAULTS.activation_steps),
        "event-loop callbacks one workflow activation may run before its run fails (poison code)",
    ),
    EnvVar(
        "KFLOW_DEV_PORT_OFFSET",
        "0, or the offset the stack was started with",
        "added to every kflow dev server port (a second local stack beside the default one)",
    ),
    EnvVar("KFLOW_CASSANDRA_LOCAL_DC", "the driver's choice", "Cassandra datacenter requests are routed to"),
    EnvVar(
        "KFLOW_CASSANDRA_REPLICATION",
        "SimpleStrategy:1",
        "replication of the keyspace kflow creates (JSON or NetworkTopologyStrategy:dc1=3)",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_CONSISTENCY",
        DEFAULT_CONSISTENCY,
        "Cassandra consistency of reads and writes (LEVEL or read=LEVEL,write=LEVEL)",
    ),
)
"""Every variable ``Settings.from_env`` reads, in the order ``kflow --help`` lists them."""
