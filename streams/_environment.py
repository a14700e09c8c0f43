"""Every setting kflow reads, once: its ``KFLOW_*`` variable, its key in a configuration file, its default in words
and what it sets (``kflow --help``, docs/api.md "Configuration")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CONFIG_VARIABLE: Final = "KFLOW_CONFIG"
"""The variable naming the TOML configuration file (``kflow --config FILE`` wins over it)."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One ``KFLOW_*`` variable ``Settings.from_env`` reads: its name, its default in words, what it sets, and its
    key in the TOML configuration file (``""``: none; ``table.key`` for a key of ``[kafka]`` or ``[cassandra]``)."""

    name: str
    default: str
    meaning: str
    key: str = ""


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar(
        "KFLOW_CONFIG", "unset", "TOML file with any of these settings (kflow --config wins; variables win over it)"
    ),
    EnvVar("KFLOW_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers", "kafka.bootstrap"),
    EnvVar(
        "KFLOW_CASSANDRA",
        "127.0.0.1:9042",
        "Cassandra contact points host[:port], comma-separated",
        "cassandra.contact_points",
    ),
    EnvVar("KFLOW_KEYSPACE", "kflow, or kflow_<prefix> for another prefix", "Cassandra keyspace", "keyspace"),
    EnvVar("KFLOW_TOPIC_PREFIX", "kflow", "prefix of every topic name (<prefix>.inbox, …)", "topic_prefix"),
    EnvVar("KFLOW_PARTITIONS", "4", "partition count of the topics kflow creates", "partitions"),
    EnvVar(
        "KFLOW_REPLICATION_FACTOR",
        "3 with >= 3 brokers, else 1",
        "replication factor of the topics kflow creates (min.insync.replicas: one less, at least 1)",
        "replication_factor",
    ),
    EnvVar(
        "KFLOW_RETENTION",
        "30d",
        "retention of .inbox, .tasks, .timers, .completions, .dlq (-1: unbounded)",
        "retention",
    ),
    EnvVar(
        "KFLOW_SECRET",
        "unset",
        "HMAC key: signs and checks step results and timers, enables the cloudpickle codec (off while unset)",
        "secret",
    ),
    EnvVar("KFLOW_HOME", "$XDG_CACHE_HOME/kflow or ~/.cache/kflow", "server jars and local server data", "home"),
    EnvVar("KFLOW_EVENT_SOFT_LIMIT", "10000", "history length that logs a warning per run", "event_soft_limit"),
    EnvVar("KFLOW_EVENT_HARD_LIMIT", "50000", "history length at which a run fails", "event_hard_limit"),
    EnvVar(
        "KFLOW_EVENT_WARNING_INTERVAL",
        "100",
        "past the soft limit, the warning repeats every this many events",
        "event_warning_interval",
    ),
    EnvVar(
        "KFLOW_ACTIVATION_STEPS",
        "1000000",
        "event-loop callbacks one workflow activation may run before its run fails (poison code)",
        "activation_steps",
    ),
    EnvVar(
        "KFLOW_LIVE_HISTORY_BYTES",
        "67108864 (64 MiB)",
        "per orchestrator partition: bytes of running runs' histories in memory (beyond: on local disk)",
        "live_history_bytes",
    ),
    EnvVar(
        "KFLOW_EARLY_HOOK_BYTES",
        "1048576 (1 MiB)",
        "per run: bytes of hook payloads kept for a hook() not reached yet (beyond: refused)",
        "early_hook_bytes",
    ),
    EnvVar(
        "KFLOW_CLIENT_CACHE_BYTES",
        "67108864 (64 MiB)",
        "per client: bytes of run results it keeps in memory (beyond: read again from Kafka)",
        "client_cache_bytes",
    ),
    EnvVar(
        "KFLOW_DEV_PORT_OFFSET",
        "0, or the offset the stack was started with",
        "added to every kflow dev server port (a second local stack beside the default one)",
        "dev_port_offset",
    ),
    EnvVar(
        "KFLOW_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (TLS + username/password)",
        "kafka.security_protocol",
    ),
    EnvVar(
        "KFLOW_KAFKA_SASL_MECHANISM",
        "PLAIN with SASL_*",
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        "kafka.sasl_mechanism",
    ),
    EnvVar("KFLOW_KAFKA_USERNAME", "unset", "SASL username (SASL_* protocols)", "kafka.username"),
    EnvVar("KFLOW_KAFKA_PASSWORD", "unset", "SASL password (never printed)", "kafka.password"),
    EnvVar(
        "KFLOW_KAFKA_CA_FILE",
        "the system's authorities",
        "PEM file of the CAs that signed the brokers' certificates (SSL, SASL_SSL)",
        "kafka.ca_file",
    ),
    EnvVar("KFLOW_KAFKA_CERT_FILE", "unset", "PEM client certificate chain, for mTLS", "kafka.cert_file"),
    EnvVar("KFLOW_KAFKA_KEY_FILE", "in the cert file", "PEM private key of the client certificate", "kafka.key_file"),
    EnvVar("KFLOW_KAFKA_KEY_PASSWORD", "unset", "password of that key (never printed)", "kafka.key_password"),
    EnvVar(
        "KFLOW_KAFKA_CHECK_HOSTNAME",
        "true",
        "whether a broker's certificate must name the host connected to (false: the chain is still checked)",
        "kafka.check_hostname",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_LOCAL_DC",
        "the driver's choice",
        "Cassandra datacenter requests are routed to",
        "cassandra.local_dc",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_REPLICATION",
        "SimpleStrategy:1",
        "replication of the keyspace kflow creates (JSON or NetworkTopologyStrategy:dc1=3)",
        "cassandra.replication",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_CONSISTENCY",
        "LOCAL_QUORUM",
        "Cassandra consistency of reads and writes (LEVEL or read=LEVEL,write=LEVEL)",
        "cassandra.consistency",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_USERNAME",
        "unset",
        "Cassandra login (PasswordAuthenticator), with KFLOW_CASSANDRA_PASSWORD",
        "cassandra.username",
    ),
    EnvVar("KFLOW_CASSANDRA_PASSWORD", "unset", "Cassandra password (never printed)", "cassandra.password"),
    EnvVar(
        "KFLOW_CASSANDRA_CA_FILE",
        "unset: no TLS",
        "PEM file of the CAs that signed the nodes' certificates; set (or a cert file): TLS",
        "cassandra.ca_file",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_CERT_FILE",
        "unset",
        "PEM client certificate chain (TLS with client auth)",
        "cassandra.cert_file",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_KEY_FILE",
        "in the cert file",
        "PEM private key of the client certificate",
        "cassandra.key_file",
    ),
    EnvVar(
        "KFLOW_CASSANDRA_CHECK_HOSTNAME",
        "true",
        "whether a node's certificate must name the host connected to (false: the chain is still checked)",
        "cassandra.check_hostname",
    ),
    EnvVar(
        "KFLOW_METRICS_PORT",
        "unset: no server",
        "processor, worker, materializer: port of /metrics (Prometheus), /healthz and /readyz (--metrics-port)",
        "metrics_port",
    ),
    EnvVar(
        "KFLOW_LOG_FORMAT",
        "text",
        "processor, worker, materializer: text or json (one object per line) logs (--log-format)",
        "log_format",
    ),
    EnvVar(
        "KFLOW_TRACES",
        "off",
        "processor, worker, materializer: otlp (OTEL_EXPORTER_OTLP_*) or console OpenTelemetry traces (kflow[otel])",
        "traces",
    ),
    EnvVar(
        "KFLOW_INSTANCE_ID",
        "unset: dynamic",
        "processor, worker, materializer: static group membership id, unique per process; a restart with the same id "
        "takes its partitions back at once (--instance-id)",
        "instance_id",
    ),
)
"""Every variable ``Settings.from_env`` reads, in the order ``kflow --help`` lists them."""

FILE_KEYS: Final = {var.key: var.name for var in ENVIRONMENT if var.key}
"""Key in the configuration file → variable."""
