"""The shape of a local stack: how many brokers, which ports, which folders, and the remembered choice.

``kflow dev up --brokers N`` writes a :class:`StackConfig` to ``<home>/run/stack.json``; later commands read it
back, so a bare ``kflow dev up`` restarts the same stack. Node ``i`` of ``N`` (ids 1..N) is a combined KRaft
broker+controller on ports ``9092+2(i-1)`` (broker) and ``9093+2(i-1)`` (controller), plus the port offset.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streams.dev._jvm import DevStackError

KAFKA_BROKER_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
CASSANDRA_NATIVE_PORT = 9042
CASSANDRA_STORAGE_PORT = 7000
HOST = "127.0.0.1"
STACK_FILE = "stack.json"
MAX_BROKERS = 9  # ports stay below 9110: clear of Cassandra's 9042 and of a second stack's offset


@dataclass(frozen=True, slots=True)
class StackConfig:
    """What ``kflow dev up`` runs: ``brokers`` KRaft nodes, Cassandra unless ``cassandra`` is False, all ports
    shifted by ``port_offset``; ``secure``: TLS, SCRAM and ACLs on Kafka, TLS and passwords on Cassandra."""

    brokers: int = 1
    port_offset: int = 0
    cassandra: bool = True
    secure: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.brokers <= MAX_BROKERS:
            raise DevStackError(f"--brokers must be between 1 and {MAX_BROKERS}, got {self.brokers}")
        if not 0 <= self.port_offset <= 50_000:
            raise DevStackError(f"KFLOW_DEV_PORT_OFFSET must be between 0 and 50000, got {self.port_offset}")

    @property
    def nodes(self) -> range:
        """The KRaft node ids, 1..N."""
        return range(1, self.brokers + 1)

    def broker_ports(self, node: int) -> tuple[int, int]:
        """(broker, controller) ports of node ``node``."""
        step = 2 * (node - 1) + self.port_offset
        return KAFKA_BROKER_PORT + step, KAFKA_CONTROLLER_PORT + step

    @property
    def cassandra_ports(self) -> tuple[int, int]:
        """(native transport, storage) ports of Cassandra (JMX stays off: no 7199)."""
        return CASSANDRA_NATIVE_PORT + self.port_offset, CASSANDRA_STORAGE_PORT + self.port_offset

    @property
    def bootstrap(self) -> str:
        """Every broker, comma-separated: the value for ``KFLOW_BOOTSTRAP``."""
        return ",".join(f"{HOST}:{self.broker_ports(node)[0]}" for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        """Replication factor of internal and auto-created topics: min(3, N)."""
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        """min.insync.replicas: one less than the replication factor (so one broker may be down), at least 1."""
        return max(1, self.replication_factor - 1)

    @property
    def server_names(self) -> list[str]:
        """``kafka-1`` … ``kafka-N`` then ``cassandra`` when it is part of the stack."""
        return [broker_name(node) for node in self.nodes] + (["cassandra"] if self.cassandra else [])

    def kafka_dir(self, run: Path, node: int) -> Path:
        """Run folder of node ``node``: ``run/kafka`` for a single broker (the layout before clusters), else
        ``run/kafka-<node>``."""
        return run / "kafka" if self.brokers == 1 else run / broker_name(node)


def broker_name(node: int) -> str:
    """The server name of KRaft node ``node`` (``kafka-2``)."""
    return f"kafka-{node}"


def kafka_properties(
    template: str, config: StackConfig, node: int, data_dir: Path, secure: SecureKafka | None = None
) -> str:
    """``server.properties`` of node ``node`` of ``config``, from the single-node ``template``.

    With one broker and no port offset this is the template with only ``@DATA_DIR@`` filled in. ``secure`` (for
    a ``config.secure`` stack) turns the client listener into SASL_SSL and appends ``secure_kafka_lines``.
    """
    broker, controller = config.broker_ports(node)
    rf, min_isr = str(config.replication_factor), str(config.min_insync_replicas)
    voters = ",".join(f"{n}@{HOST}:{config.broker_ports(n)[1]}" for n in config.nodes)
    client = SECURE_LISTENER if secure is not None else "PLAINTEXT"
    listeners = f"{client}://{HOST}:{broker},CONTROLLER://{HOST}:{controller}"
    overrides = {
        "node.id": str(node),
        "controller.quorum.voters": voters,
        "listeners": listeners,
        "advertised.listeners": listeners,
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
    }
    if secure is not None:
        overrides |= {
            "inter.broker.listener.name": SECURE_LISTENER,
            "listener.security.protocol.map": f"CONTROLLER:SSL,{SECURE_LISTENER}:SASL_SSL",
        }
    lines = []
    for line in template.replace("@DATA_DIR@", str(data_dir)).splitlines():
        key, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and key.strip() in overrides:
            line = f"{key.strip()}={overrides.pop(key.strip())}"
        lines.append(line)
    if overrides:  # the template lost a key this function must set: fail loudly, not silently misconfigure
        raise DevStackError(f"server.properties template lacks {', '.join(sorted(overrides))}")
    if secure is not None:
        lines += secure_kafka_lines(secure)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class SecureKafka:
    """What a secure node's ``server.properties`` names: the PEM files and the admin principal's password (the
    node's own login to the other brokers: the inter-broker listener is the SASL_SSL one)."""

    keystore: Path
    truststore: Path
    admin_password: str = field(repr=False)


SECURE_LISTENER = "SASL_SSL"
"""The name of the secure stack's client (and inter-broker) listener."""
ADMIN_PRINCIPAL = "User:admin"
NODE_PRINCIPAL = "User:CN=kflow-dev-server"
"""The KRaft nodes' principal on the controller listener (mutual TLS with the server certificate)."""


def secure_kafka_lines(secure: SecureKafka) -> list[str]:
    """The lines a secure node adds to ``server.properties`` (SASL, TLS with PEM stores, the authorizer)."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{secure.admin_password}";'
    )
    listener = f"listener.name.{SECURE_LISTENER.lower()}"
    return [
        "",
        "# --- kflow dev up --secure: clients and brokers on SASL_SSL (SCRAM-SHA-512), the KRaft quorum on mutual TLS",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f"{listener}.scram-sha-512.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={secure.keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={secure.truststore}",
        "listener.name.controller.ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users={ADMIN_PRINCIPAL};{NODE_PRINCIPAL}",
        "allow.everyone.if.no.acl.found=false",
    ]


def cassandra_yaml(template: str, config: StackConfig, run: Path, secure: SecureCassandra | None = None) -> str:
    """``cassandra.yaml`` for ``run`` with the ports of ``config`` (unchanged ports without an offset); ``secure``
    appends password authentication, role-based authorization and client TLS from PEM files."""
    native, storage = config.cassandra_ports
    text = template.replace("@RUN@", str(run))
    text = re.sub(r"(?m)^storage_port: \d+$", f"storage_port: {storage}", text)
    text = re.sub(r"(?m)^native_transport_port: \d+$", f"native_transport_port: {native}", text)
    text = re.sub(r'seeds: "127\.0\.0\.1:\d+"', f'seeds: "{HOST}:{storage}"', text)
    if secure is None:
        return text
    return text.rstrip("\n") + "\n" + "\n".join(secure_cassandra_lines(secure)) + "\n"


@dataclass(frozen=True, slots=True)
class SecureCassandra:
    """The PEM files a secure Cassandra serves its clients TLS with."""

    keystore: Path
    truststore: Path


def secure_cassandra_lines(secure: SecureCassandra) -> list[str]:
    """The lines a secure node adds to ``cassandra.yaml``."""
    return [
        "",
        "# --- kflow dev up --secure: passwords, roles and permissions, client-to-node TLS from PEM files",
        "authenticator: PasswordAuthenticator",
        "authorizer: CassandraAuthorizer",
        "role_manager: CassandraRoleManager",
        "client_encryption_options:",
        "  enabled: true",
        "  optional: false",
        "  ssl_context_factory:",
        "    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory",
        f"  keystore: {secure.keystore}",
        f"  truststore: {secure.truststore}",
        "  require_client_auth: false",
    ]


def load_config(run: Path) -> StackConfig | None:
    """The remembered stack in ``run/stack.json``, or None when none was remembered.

    Raises:
        DevStackError: when the file is unreadable (it names the file to delete).
    """
    path = run / STACK_FILE
    try:
        raw = json.loads(path.read_text())
        return StackConfig(
            brokers=int(raw["brokers"]),
            port_offset=int(raw["port_offset"]),
            cassandra=bool(raw["cassandra"]),
            secure=bool(raw.get("secure", False)),  # remembered since --secure; older stacks are plain
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DevStackError(f"{path} is unreadable ({exc!r}); fix or delete it") from None


def save_config(run: Path, config: StackConfig) -> None:
    """Remember ``config`` in ``run/stack.json`` (written whole, then renamed)."""
    run.mkdir(parents=True, exist_ok=True)
    tmp = run / (STACK_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
    tmp.replace(run / STACK_FILE)


def has_kafka_data(run: Path) -> bool:
    """Whether any Kafka node under ``run`` was formatted (a KRaft quorum cannot be resized by reformatting)."""
    return any(run.glob("kafka*/data/meta.properties"))


def cluster_id(run: Path) -> str | None:
    """The KRaft cluster id some node under ``run`` was formatted with, so the others join the same cluster."""
    for meta in sorted(run.glob("kafka*/data/meta.properties")):
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.partition("=")[2].strip()
    return None


def random_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage.sh random-uuid`` makes one: 16 random bytes, URL-safe base64 without
    padding, never starting with ``-`` (like Kafka's ``Uuid.randomUuid``: the format tool would take it for an
    option, and ``kflow dev up`` then failed once in 64 starts)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
