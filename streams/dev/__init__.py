"""Local servers for development and tests (``kflow dev``): Kafka and Cassandra from Maven jars, their
readiness probes and configuration (``servers/``), the secure variant's certificates, passwords and ACLs per role
(``kflow dev up --secure``, docs/security.md), the smoke round trip and the example runner."""

from streams.dev._acls import ROLE_GRANTS, Acl, Grant, acl_table, role_acls
from streams.dev._certs import CertificateFiles, ensure_certificates
from streams.dev._demo import Say, Scenario, history_lines, run_example
from streams.dev._jvm import Daemon, DevStackError, fetch_jars, find_java17, stop_together
from streams.dev._layout import (
    SecureCassandra,
    SecureKafka,
    StackConfig,
    cassandra_yaml,
    kafka_properties,
    random_cluster_id,
)
from streams.dev._readiness import cassandra_ready, kafka_ready
from streams.dev._secure import (
    ADMIN,
    ROLES,
    CassandraLogin,
    KafkaLogin,
    StackSecrets,
    export_lines,
    resolved,
    scram_argument,
)
from streams.dev._smoke import smoke_roundtrip
from streams.dev._stack import CASSANDRA_VERSION, KAFKA_VERSION, DevStack, ServerStatus

__all__ = [
    "random_cluster_id",
    "DevStack",
    "KAFKA_VERSION",
    "CASSANDRA_VERSION",
    "ServerStatus",
    "DevStackError",
    "Daemon",
    "fetch_jars",
    "find_java17",
    "stop_together",
    "StackConfig",
    "kafka_properties",
    "cassandra_yaml",
    "kafka_ready",
    "cassandra_ready",
    "smoke_roundtrip",
    "run_example",
    "Scenario",
    "Say",
    "history_lines",
    # the secure stack (kflow dev up --secure)
    "ROLES",
    "ADMIN",
    "StackSecrets",
    "KafkaLogin",
    "CassandraLogin",
    "export_lines",
    "resolved",
    "scram_argument",
    "CertificateFiles",
    "ensure_certificates",
    "SecureKafka",
    "SecureCassandra",
    "Grant",
    "Acl",
    "ROLE_GRANTS",
    "role_acls",
    "acl_table",
]
