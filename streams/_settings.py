"""Settings read from ``KFLOW_*`` environment variables and an optional TOML file (docs/api.md, "Configuration"),
once, by the composition root: a pydantic-settings model whose sources are the environment and the file
(``streams._settings_sources``), every value checked by the validators below with the messages kflow has always given
(the message names the variable).

A new setting: a field with its variable as ``validation_alias``, an ``EnvVar`` with its file key in
``streams/_environment.py`` (``from_env`` reads only the variables listed there; ``kflow --help`` and the file use the
same list), and a ``mode="before"`` validator when its text needs parsing (a value from the file arrives as text too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from storage import CONSISTENCY_LEVELS, CassandraTarget, parse_replication
from streams._environment import CONFIG_VARIABLE, ENVIRONMENT, FILE_KEYS
from streams._environment import EnvVar as EnvVar  # re-exported: kflow --help lists ENVIRONMENT
from streams._errors import SettingsError
from streams._kafka_target import ATTRIBUTES, KafkaTarget, security_problem
from streams._keyspace import default_keyspace as keyspace_of_prefix
from streams._settings_sources import ConfigFile, Variables, settings_error
from streams._settings_values import (
    DEFAULT_CONSISTENCY,
    Replication,
    default_home,
    parse_consistency,
    parse_contact_points,
    parse_retention,
    positive_int,
)
from streams._topics import DEFAULT_RETENTION_MS

__all__ = ["ENVIRONMENT", "EnvVar", "Settings", "default_keyspace"]

_KAFKA_VARIABLES = {name: f"KFLOW_KAFKA_{name.upper()}" for name in ATTRIBUTES}
"""What ``security_problem`` calls each Kafka security setting: its variable."""


def _variable(info: ValidationInfo) -> str:
    """The variable of the field being validated."""
    alias = Settings.model_fields[info.field_name or ""].validation_alias
    return alias if isinstance(alias, str) else str(info.field_name)


def default_keyspace(topic_prefix: str) -> str:
    """The keyspace when none is configured (``KFLOW_KEYSPACE``, ``keyspace`` in the file): ``kflow`` for the prefix
    ``kflow``, one of its own for any other (``kflow_<prefix>``: ``streams._keyspace``).

    The one place that decides it (``topic_prefix`` is the configured prefix, for a default derived from it)."""
    return keyspace_of_prefix(topic_prefix)


class Settings(BaseSettings):
    """Where kflow finds its servers, how it connects to them and how it names what it creates there.

    ``Settings.from_env()`` reads every ``KFLOW_*`` variable (and the TOML file of ``KFLOW_CONFIG``); ``Settings()``
    and ``Settings(name=value, …)`` read nothing: the defaults and the given attributes. Immutable: ``replace``
    makes a changed copy. Secrets (``secret``, the passwords) never appear in ``repr``, ``str`` or a dump.

    Attributes:
        bootstrap: Kafka bootstrap servers (``KFLOW_BOOTSTRAP``).
        cassandra: Cassandra contact points, ``host[:port]`` separated by commas (``KFLOW_CASSANDRA``).
        keyspace: Cassandra keyspace (``KFLOW_KEYSPACE``; default ``default_keyspace``).
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
        live_history_bytes: per inbox partition, the bytes of the running runs' histories the orchestrator holds in
            memory (``KFLOW_LIVE_HISTORY_BYTES``); past it the least recently used go to local disk.
        early_hook_bytes: the orchestrator's default budget of early hook payloads per run
            (``KFLOW_EARLY_HOOK_BYTES``): past it a payload is refused; ``@workflow(event_limits=…)`` wins.
        client_cache_bytes: the bytes of run results a ``Client`` keeps in memory (``KFLOW_CLIENT_CACHE_BYTES``).
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
        kafka_*: how Kafka clients connect (``KFLOW_KAFKA_*``): ``kafka_target()``.
        cassandra_username / cassandra_password / cassandra_ca_file / cassandra_cert_file / cassandra_key_file /
            cassandra_check_hostname: Cassandra's login and TLS (``KFLOW_CASSANDRA_*``): ``cassandra_target()``.
        metrics_port: port of ``/metrics``, ``/healthz``, ``/readyz`` of long-running commands (``KFLOW_METRICS_PORT``);
            None: no server.
        log_format: ``text`` or ``json`` (one object per line) for long-running commands (``KFLOW_LOG_FORMAT``).
        traces: ``off``, ``otlp`` or ``console``: the OpenTelemetry tracer provider long-running commands install
            (``KFLOW_TRACES``; ``off``: the global one, a no-op unless the application set one).
        instance_id: static group membership of a long-running command's consumers (``KFLOW_INSTANCE_ID``): a process
            restarted with the same id takes its partitions back without a rebalance. None: dynamic membership.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        case_sensitive=True,
        validate_by_name=True,
        validate_by_alias=True,
        hide_input_in_errors=True,
    )

    bootstrap: str = Field("127.0.0.1:9092", validation_alias="KFLOW_BOOTSTRAP")
    cassandra: str = Field("127.0.0.1:9042", validation_alias="KFLOW_CASSANDRA")
    keyspace: str = Field("kflow", validation_alias="KFLOW_KEYSPACE")
    topic_prefix: str = Field("kflow", validation_alias="KFLOW_TOPIC_PREFIX")
    partitions: int = Field(4, validation_alias="KFLOW_PARTITIONS")
    secret: bytes | None = Field(None, validation_alias="KFLOW_SECRET", repr=False, exclude=True)
    home: Path = Field(default_factory=lambda: Path.home() / ".cache" / "kflow", validation_alias="KFLOW_HOME")
    event_soft_limit: int = Field(10_000, validation_alias="KFLOW_EVENT_SOFT_LIMIT")
    event_hard_limit: int = Field(50_000, validation_alias="KFLOW_EVENT_HARD_LIMIT")
    event_warning_interval: int = Field(100, validation_alias="KFLOW_EVENT_WARNING_INTERVAL")
    activation_steps: int = Field(1_000_000, validation_alias="KFLOW_ACTIVATION_STEPS")
    live_history_bytes: int = Field(64 * 1024 * 1024, validation_alias="KFLOW_LIVE_HISTORY_BYTES")
    early_hook_bytes: int = Field(1024 * 1024, validation_alias="KFLOW_EARLY_HOOK_BYTES")
    client_cache_bytes: int = Field(64 * 1024 * 1024, validation_alias="KFLOW_CLIENT_CACHE_BYTES")
    replication_factor: int | None = Field(None, validation_alias="KFLOW_REPLICATION_FACTOR")
    retention_ms: int = Field(DEFAULT_RETENTION_MS, validation_alias="KFLOW_RETENTION")
    cassandra_local_dc: str | None = Field(None, validation_alias="KFLOW_CASSANDRA_LOCAL_DC")
    cassandra_replication: Replication = Field((), validation_alias="KFLOW_CASSANDRA_REPLICATION")
    cassandra_read_consistency: str = DEFAULT_CONSISTENCY
    cassandra_write_consistency: str = DEFAULT_CONSISTENCY
    dev_port_offset: int | None = Field(None, validation_alias="KFLOW_DEV_PORT_OFFSET")
    kafka_security_protocol: str = Field("PLAINTEXT", validation_alias="KFLOW_KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: str | None = Field(None, validation_alias="KFLOW_KAFKA_SASL_MECHANISM")
    kafka_username: str | None = Field(None, validation_alias="KFLOW_KAFKA_USERNAME")
    kafka_password: SecretStr | None = Field(None, validation_alias="KFLOW_KAFKA_PASSWORD")
    kafka_ca_file: Path | None = Field(None, validation_alias="KFLOW_KAFKA_CA_FILE")
    kafka_cert_file: Path | None = Field(None, validation_alias="KFLOW_KAFKA_CERT_FILE")
    kafka_key_file: Path | None = Field(None, validation_alias="KFLOW_KAFKA_KEY_FILE")
    kafka_key_password: SecretStr | None = Field(None, validation_alias="KFLOW_KAFKA_KEY_PASSWORD")
    kafka_check_hostname: bool = Field(True, validation_alias="KFLOW_KAFKA_CHECK_HOSTNAME")
    cassandra_username: str | None = Field(None, validation_alias="KFLOW_CASSANDRA_USERNAME")
    cassandra_password: SecretStr | None = Field(None, validation_alias="KFLOW_CASSANDRA_PASSWORD")
    cassandra_ca_file: Path | None = Field(None, validation_alias="KFLOW_CASSANDRA_CA_FILE")
    cassandra_cert_file: Path | None = Field(None, validation_alias="KFLOW_CASSANDRA_CERT_FILE")
    cassandra_key_file: Path | None = Field(None, validation_alias="KFLOW_CASSANDRA_KEY_FILE")
    cassandra_check_hostname: bool = Field(True, validation_alias="KFLOW_CASSANDRA_CHECK_HOSTNAME")
    metrics_port: int | None = Field(None, ge=0, le=65535, validation_alias="KFLOW_METRICS_PORT")
    log_format: Literal["text", "json"] = Field("text", validation_alias="KFLOW_LOG_FORMAT")
    traces: Literal["off", "otlp", "console"] = Field("off", validation_alias="KFLOW_TRACES")
    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,249}$", validation_alias="KFLOW_INSTANCE_ID")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(…)`` takes only what it is given: the environment is read by ``from_env``."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, config: str | Path | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``) and the TOML file ``config`` (default: the file
        ``KFLOW_CONFIG`` names, if any); a variable that is set wins over the file. ``ENVIRONMENT`` lists them.

        Raises:
            SettingsError: a bad value, a missing or malformed file, an unknown key in it (also a ``ValueError``);
                the message names the variable (and the file key).
        """
        env = os.environ if env is None else env
        variables = Variables(cls, env, (var.name for var in ENVIRONMENT))
        if not variables.values.get("KFLOW_HOME"):  # unset or empty: the file's, else the XDG default
            variables.values.pop("KFLOW_HOME", None)
        path = config if config is not None else variables.values.pop(CONFIG_VARIABLE, "").strip() or None
        variables.values.pop(CONFIG_VARIABLE, None)
        given_by = "--config" if config is not None else CONFIG_VARIABLE
        file = ConfigFile(cls, Path(path).expanduser(), FILE_KEYS, given_by) if path is not None else None
        defaults = Variables(cls, {"KFLOW_HOME": str(default_home(env))}, ["KFLOW_HOME"])
        sources = (variables, *((file,) if file else ()), defaults)
        try:
            # BaseSettings.__init__ takes the sources; mypy sees only the fields of pydantic's synthesized __init__
            return cls(_build_sources=(sources, {}))  # type: ignore[call-arg]
        except ValidationError as exc:
            raise settings_error(exc, file, variables) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with the attributes ``changes`` names set, validated as ``Settings(…)`` is."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        """``KFLOW_CASSANDRA_CONSISTENCY`` into its two levels; the keyspace's default."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        raw = data.pop("KFLOW_CASSANDRA_CONSISTENCY", None)
        if raw is not None:
            data["cassandra_read_consistency"], data["cassandra_write_consistency"] = parse_consistency(str(raw))
        if "keyspace" not in data and "KFLOW_KEYSPACE" not in data:
            data["keyspace"] = default_keyspace(str(data.get("KFLOW_TOPIC_PREFIX", data.get("topic_prefix", "kflow"))))
        return data

    @field_validator(
        "partitions",
        "event_soft_limit",
        "event_hard_limit",
        "event_warning_interval",
        "activation_steps",
        "live_history_bytes",
        "early_hook_bytes",
        "client_cache_bytes",
        mode="before",
    )
    @classmethod
    def _count(cls, value: object, info: ValidationInfo) -> object:
        return positive_int(value, _variable(info))

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _factor(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):  # unset or empty: chosen from the broker count
            return positive_int(value, _variable(info)) if value.strip() else None
        return value if value is None else positive_int(value, _variable(info))

    @field_validator("cassandra", mode="before")
    @classmethod
    def _contact_points(cls, value: object) -> object:
        if isinstance(value, str):
            parse_contact_points(value)
        return value

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, value: object) -> object:
        return (value.encode() or None) if isinstance(value, str) else value

    @field_validator("retention_ms", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_retention(value) if value.strip() else DEFAULT_RETENTION_MS
        return value

    @field_validator("cassandra_replication", mode="before")
    @classmethod
    def _replication(cls, value: object) -> object:
        try:
            if isinstance(value, str):
                return parse_replication(value) if value.strip() else ()
            if isinstance(value, Mapping):
                return parse_replication(json.dumps(dict(value)))
        except ValueError as exc:
            raise SettingsError(f"KFLOW_CASSANDRA_REPLICATION: {exc}") from None
        return value

    @field_validator("cassandra_read_consistency", "cassandra_write_consistency")
    @classmethod
    def _level(cls, value: str) -> str:
        if value not in CONSISTENCY_LEVELS:
            raise SettingsError(f"unknown consistency level {value!r} (one of {', '.join(CONSISTENCY_LEVELS)})")
        return value

    @field_validator("dev_port_offset", mode="before")
    @classmethod
    def _offset(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        offset = value.strip()  # unset or empty: the stack's remembered offset
        if offset and not offset.isdigit():
            raise SettingsError(f"KFLOW_DEV_PORT_OFFSET must be a non-negative integer, got {offset!r}")
        return int(offset) if offset else None

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        default = "PLAINTEXT" if info.field_name == "kafka_security_protocol" else None
        return value.strip().upper() or default

    @field_validator(
        "cassandra_local_dc",
        "kafka_username",
        "kafka_password",
        "kafka_key_password",
        "cassandra_username",
        "cassandra_password",
        mode="before",
    )
    @classmethod
    def _optional(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and info.field_name == "cassandra_local_dc":
            value = value.strip()
        return None if value == "" else value

    @field_validator(
        "kafka_ca_file",
        "kafka_cert_file",
        "kafka_key_file",
        "cassandra_ca_file",
        "cassandra_cert_file",
        "cassandra_key_file",
        mode="before",
    )
    @classmethod
    def _file(cls, value: object) -> object:
        if isinstance(value, str):
            return Path(value.strip()).expanduser() if value.strip() else None
        return value

    @field_validator("kafka_check_hostname", "cassandra_check_hostname", mode="before")
    @classmethod
    def _flag(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if text in ("", "true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise SettingsError(f"{_variable(info)} must be true or false, got {value!r}")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.event_soft_limit > self.event_hard_limit:
            raise SettingsError(
                f"KFLOW_EVENT_SOFT_LIMIT ({self.event_soft_limit}) is above KFLOW_EVENT_HARD_LIMIT "
                f"({self.event_hard_limit})"
            )
        problem = security_problem({name: getattr(self, f"kafka_{name}") for name in ATTRIBUTES}, _KAFKA_VARIABLES)
        if problem is not None:
            raise SettingsError(problem)
        if (self.cassandra_username is None) != (self.cassandra_password is None):
            raise SettingsError("KFLOW_CASSANDRA_USERNAME and KFLOW_CASSANDRA_PASSWORD go together")
        if self.cassandra_key_file is not None and self.cassandra_cert_file is None:
            raise SettingsError("KFLOW_CASSANDRA_KEY_FILE is set without KFLOW_CASSANDRA_CERT_FILE")
        return self

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
        levels, the replication of a keyspace created through it, login and TLS."""
        return CassandraTarget.of(
            self.cassandra_points,
            local_dc=self.cassandra_local_dc,
            read_consistency=self.cassandra_read_consistency,
            write_consistency=self.cassandra_write_consistency,
            replication=self.cassandra_replication,
            username=self.cassandra_username,
            password=self.cassandra_password,
            ca_file=self.cassandra_ca_file,
            cert_file=self.cassandra_cert_file,
            key_file=self.cassandra_key_file,
            check_hostname=self.cassandra_check_hostname,
        )

    def kafka_target(self) -> KafkaTarget:
        """Every Kafka connection setting as a ``KafkaTarget``: bootstrap servers, TLS, SASL."""
        return KafkaTarget(
            self.bootstrap,
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_username,
            self.kafka_password,
            self.kafka_ca_file,
            self.kafka_cert_file,
            self.kafka_key_file,
            self.kafka_key_password,
            self.kafka_check_hostname,
        )
