"""``kflow dev``: a real KRaft Kafka (one node or a small cluster) and Cassandra on 127.0.0.1, from Maven jars,
no Docker.

Jars are fetched once into ``<home>/jars``; data and logs live in ``<home>/run``, the stack's shape in
``<home>/run/stack.json`` (``_layout``). Servers are started detached, found again through pid files, and
reported ready only after a real client round trip.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from streams.dev._acls import create_acls, role_acls
from streams.dev._certs import write_private
from streams.dev._jvm import Daemon, DevStackError, fetch_jars, find_java17, run_all, stop_together
from streams.dev._layout import (
    HOST,
    SecureCassandra,
    SecureKafka,
    StackConfig,
    broker_name,
    cassandra_yaml,
    cluster_id,
    has_kafka_data,
    kafka_properties,
    load_config,
    random_cluster_id,
    save_config,
)
from streams.dev._readiness import cassandra_ready, kafka_ready
from streams.dev._secure import ADMIN, StackSecrets, environment, java_argfile

Say = Callable[[str], None]
_FILES = Path(__file__).parent / "servers"
KAFKA_VERSION = "4.1.2"
CASSANDRA_VERSION = "5.0.8"
KAFKA_MAIN = "kafka.Kafka"
CASSANDRA_MAIN = "org.apache.cassandra.service.CassandraDaemon"
_KAFKA_STOP_S, _CASSANDRA_STOP_S = 30.0, 45.0

# bin/kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS with a test-sized heap instead of -Xmx1G
_KAFKA_JVM = [
    "-Xms256m",
    "-Xmx512m",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What one local server is doing."""

    name: str
    pid: int | None
    ports: tuple[int, ...]
    rss_mib: float | None
    run_dir: Path

    def describe(self) -> str:
        """One human line: ``kafka-1    running   pid 123    127.0.0.1:9092,9093    412 MiB  <dir>``."""
        if self.pid is None:
            return f"{self.name:<10} stopped   {'':<10} {self.run_dir}"
        ports = ",".join(str(p) for p in self.ports)
        rss = f"{self.rss_mib:.0f} MiB" if self.rss_mib is not None else "?"
        return f"{self.name:<10} running   pid {self.pid:<7} {HOST}:{ports:<11} {rss:>9}  {self.run_dir}"


class DevStack:
    """The local Kafka broker(s) + Cassandra behind ``kflow dev up|down|status``.

    ``config`` is the stack as remembered in ``<home>/run/stack.json`` (one broker, Cassandra, no port offset
    when nothing was remembered); ``port_offset`` (``KFLOW_DEV_PORT_OFFSET``) applies to a stack not yet
    remembered and, at :meth:`up`, moves a stopped one. Servers are named ``kafka-1`` … ``kafka-N`` and
    ``cassandra``.
    """

    def __init__(self, home: Path, port_offset: int | None = None) -> None:
        self.home = home
        self.run = home.absolute() / "run"
        self._offset_request = port_offset
        remembered = load_config(self.run)
        if remembered is None:  # a stack from before stack.json ran at offset 0; a new one takes the request
            offset = 0 if has_kafka_data(self.run) else (port_offset or 0)
            remembered = StackConfig(port_offset=offset)
        self.config = remembered

    @property
    def bootstrap(self) -> str:
        """Every broker of the stack, comma-separated (``KFLOW_BOOTSTRAP``)."""
        return self.config.bootstrap

    @property
    def cassandra_contact(self) -> str:
        """Cassandra's ``host:port`` (``KFLOW_CASSANDRA``)."""
        return f"{HOST}:{self.config.cassandra_ports[0]}"

    @property
    def secrets(self) -> StackSecrets | None:
        """The certificates and passwords of a secure stack (``<home>/run/secure``), None for a plain one."""
        return StackSecrets(self.run / "secure") if self.config.secure else None

    def environment(self, role: str = ADMIN) -> dict[str, str]:
        """The ``KFLOW_*`` variables of a shell using this stack (as Kafka principal ``role`` when secure); secrets
        are ``$(cat FILE)`` substitutions, never the values (``streams.dev.resolved`` reads them)."""
        cassandra = self.cassandra_contact if self.config.cassandra else None
        return environment(self.bootstrap, cassandra, self.secrets, role)

    @property
    def cassandra(self) -> Daemon:
        """The Cassandra process."""
        return Daemon("cassandra", self.run / "cassandra" / "cassandra.pid", CASSANDRA_MAIN)

    def daemon(self, name: str) -> Daemon:
        """The process of server ``name`` (``kafka-2``, ``cassandra``).

        Raises:
            DevStackError: when the stack has no such server.
        """
        if name == "cassandra":
            return self.cassandra
        for node in self.config.nodes:
            if name == broker_name(node):
                run = self.config.kafka_dir(self.run, node)
                # the node's own server.properties is on its command line: brokers of one stack are told apart
                return Daemon(name, run / "kafka.pid", str(run / "server.properties"))
        raise DevStackError(f"no server {name!r} in this stack ({', '.join(self.config.server_names)})")

    def server_names(self) -> list[str]:
        """The configured servers, plus Cassandra while it runs in a stack that no longer wants it."""
        names = self.config.server_names
        if not self.config.cassandra and self.cassandra.pid() is not None:
            names.append("cassandra")
        return names

    def pid(self, name: str) -> int | None:
        """The pid of server ``name``, or None when it is stopped."""
        return self.daemon(name).pid()

    def status(self) -> list[ServerStatus]:
        """Status of every server (pid files checked against /proc; stale ones removed)."""
        out = []
        for name in self.server_names():
            daemon = self.daemon(name)
            if name == "cassandra":
                ports, run = self.config.cassandra_ports, self.run / "cassandra"
            else:
                node = int(name.rpartition("-")[2])
                ports, run = self.config.broker_ports(node), self.config.kafka_dir(self.run, node)
            out.append(ServerStatus(name, daemon.pid(), ports, daemon.rss_mib(), run))
        return out

    def up(
        self,
        timeout: float = 240.0,
        log: Say = print,
        *,
        brokers: int | None = None,
        kafka_only: bool | None = None,
        secure: bool | None = None,
        acl_prefix: str = "kflow",
    ) -> None:
        """Fetch jars if needed, start every configured server that is not running, return once all answer.

        ``brokers``, ``kafka_only`` and ``secure`` (None: as remembered) change the stack and are remembered; so
        is the port offset given to the constructor. A secure stack gets the roles' ACLs for ``acl_prefix``.

        Raises:
            DevStackError: on a resize or a security change of a stack that has data, a port offset change while
                servers run, a missing tool, a port taken by another program, or a server not ready in time.
        """
        target = StackConfig(
            brokers=self.config.brokers if brokers is None else brokers,
            port_offset=self.config.port_offset if self._offset_request is None else self._offset_request,
            cassandra=self.config.cassandra if kafka_only is None else not kafka_only,
            secure=self.config.secure if secure is None else secure,
        )
        if target.secure != self.config.secure and (has_kafka_data(self.run) or (self.run / "cassandra").exists()):
            raise DevStackError(
                f"the stack in {self.run} has data {'without' if target.secure else 'with'} --secure (SCRAM users are "
                "made when Kafka's storage is formatted): run kflow dev down --wipe before switching"
            )
        if target.brokers != self.config.brokers and has_kafka_data(self.run):
            raise DevStackError(
                f"the stack in {self.run} has data on {self.config.brokers} Kafka node(s) and a KRaft quorum "
                f"cannot be resized in place: run kflow dev down --wipe before kflow dev up --brokers {target.brokers}"
            )
        if target.port_offset != self.config.port_offset:
            running = [s.name for s in self.status() if s.pid is not None]
            if running:
                raise DevStackError(
                    f"{', '.join(running)} running at port offset {self.config.port_offset}: "
                    f"run kflow dev down before moving the stack to port offset {target.port_offset}"
                )
        save_config(self.run, target)
        self.config = target
        self._start(self.config.server_names, timeout, log)
        if self.config.secure:
            self.grant_roles(acl_prefix, log)

    def start_server(self, name: str, timeout: float = 240.0, log: Say = print) -> None:
        """Start server ``name`` (``kafka-2``) if it is stopped and wait until the whole stack answers again.

        Raises:
            DevStackError: as :meth:`up`, or when the stack has no such server.
        """
        if name not in self.config.server_names:
            raise DevStackError(f"no server {name!r} in this stack ({', '.join(self.config.server_names)})")
        self._start([name], timeout, log)

    def stop_server(self, name: str, kill: bool = False) -> str:
        """Stop server ``name``: gracefully (SIGTERM, then SIGKILL after a timeout) or, with ``kill``, SIGKILL at
        once (a crash); says what it did."""
        daemon = self.daemon(name)
        if kill:
            return daemon.kill()
        return daemon.stop(timeout=_CASSANDRA_STOP_S if name == "cassandra" else _KAFKA_STOP_S)

    def down(self, wipe: bool = False, log: Say = print) -> None:
        """Stop every server gracefully, all at once (brokers in reverse order); ``wipe`` deletes their data
        and the remembered stack."""
        names = self.server_names()
        brokers = [self.daemon(n) for n in reversed(names) if n != "cassandra"]
        with ThreadPoolExecutor(max_workers=1) as pool:
            cassandra = pool.submit(self.cassandra.stop, _CASSANDRA_STOP_S) if "cassandra" in names else None
            # together: one by one, the last node would wait minutes for a quorum that is gone
            for line in stop_together(brokers, _KAFKA_STOP_S, quorum=len(brokers) // 2 + 1):
                log(line)
            if cassandra is not None:
                log(cassandra.result())
        if wipe and self.run.exists():
            shutil.rmtree(self.run)
            log(f"wiped {self.run}")

    def _start(self, names: Sequence[str], timeout: float, log: Say) -> None:
        started = time.monotonic()
        if self.secrets is not None:
            self.secrets.ensure()
        needed = []
        for name in names:
            if self.daemon(name).pid() is not None:
                log(f"{name}: already running")
                continue
            needed.append(name)
            for port in self._ports(name):
                if _port_open(port):
                    raise DevStackError(
                        f"port {port} on {HOST} is taken by another program; "
                        f"stop it before kflow dev up ({name} needs it)"
                    )
        if needed:
            java = find_java17()
            jars_started = time.monotonic()
            nodes = [int(n.rpartition("-")[2]) for n in needed if n != "cassandra"]
            kafka_libs = self._jars("kafka", KAFKA_VERSION, "libs") if nodes else None
            cassandra_libs = self._jars("cassandra", CASSANDRA_VERSION, "lib") if "cassandra" in needed else None
            log(f"jars ready in {time.monotonic() - jars_started:.1f}s ({self.home / 'jars'})")
            if cassandra_libs is not None:  # the slower one first
                self._start_cassandra(java, cassandra_libs)
            if kafka_libs is not None:
                self._start_kafka(java, kafka_libs, nodes)
        try:
            version = asyncio.run(self._wait_ready(timeout))
        except DevStackError:
            raise DevStackError(f"servers not ready after {timeout:.0f}s; logs: {self.run}/*/logs") from None
        brokers = f"{self.config.brokers} brokers" if self.config.brokers > 1 else "1 broker"
        brokers += ", SASL_SSL" if self.config.secure else ""
        ready = f"kafka ready on {self.bootstrap} ({brokers}, produce+consume round trip)"
        if version is not None:
            ready += f"; cassandra {version} ready on {self.cassandra_contact} (SELECT release_version)"
        log(ready)
        log(f"up in {time.monotonic() - started:.1f}s")

    def grant_roles(self, prefix: str, log: Say = print) -> None:
        """Create the ACLs of every role (client, worker, processor, ops) for topic prefix ``prefix``; idempotent.

        Raises:
            DevStackError: the stack is not secure, or Kafka refused a binding.
        """
        if self.secrets is None:
            raise DevStackError(f"the stack in {self.run} is not secure (kflow dev up --secure): it has no ACLs")
        acls = asyncio.run(create_acls(self.bootstrap, self.secrets.kafka(), role_acls(prefix)))
        log(f"ACLs of the client, worker, processor and ops roles on {prefix}.* applied ({acls} bindings)")

    def _ports(self, name: str) -> tuple[int, ...]:
        if name == "cassandra":
            return self.config.cassandra_ports
        return self.config.broker_ports(int(name.rpartition("-")[2]))

    def _jars(self, server: str, version: str, libs: str) -> Path:
        return fetch_jars(_FILES / server / "pom.xml", self.home / "jars" / f"{server}-{version}", libs)

    def _kafka_jvm(self, java: str, libs: Path, run: Path) -> list[str]:
        return [
            java,
            *_KAFKA_JVM,
            f"-Dkafka.logs.dir={run / 'logs'}",
            f"-Dlog4j2.configurationFile={_FILES / 'kafka' / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
        ]

    def _start_kafka(self, java: str, libs: Path, nodes: Sequence[int]) -> None:
        template = (_FILES / "kafka" / "server.properties").read_text()
        # what `kafka-storage.sh format -t $(kafka-storage.sh random-uuid) -c server.properties` does; a Kafka
        # Uuid is 16 random bytes in URL-safe base64 without padding. Every node shares the cluster's id.
        cluster = cluster_id(self.run) or random_cluster_id()
        secrets, formats, argfiles = self.secrets, [], []
        secure: SecureKafka | None = None
        scram: list[str] = []
        if secrets is not None:  # every node formats with the same SCRAM users (the active controller's are kept)
            certs, scram = secrets.certificates, secrets.scram_arguments()
            secure = SecureKafka(certs.keystore, certs.ca, secrets.password(ADMIN))
        for node in nodes:
            run = self.config.kafka_dir(self.run, node)
            (run / "logs").mkdir(parents=True, exist_ok=True)
            props = kafka_properties(template, self.config, node, run / "data", secure)
            write_private(run / "server.properties", props.encode())  # a secure one holds the admin's password
            if not (run / "data" / "meta.properties").exists():
                config = str(run / "server.properties")
                fmt = ["kafka.tools.StorageTool", "format", "-t", cluster, "-c", config, "--ignore-formatted"]
                if scram:  # SCRAM users: in an argument file (0600), not on a command line
                    argfiles.append(java_argfile(run / "format.args", [*fmt, *scram]))
                    fmt = [f"@{argfiles[-1]}"]
                formats.append([*self._kafka_jvm(java, libs, run), *fmt])
        try:
            run_all(formats, "kafka storage format")  # static quorum (controller.quorum.voters): no --standalone
        finally:
            for argfile in argfiles:
                argfile.unlink(missing_ok=True)
        for node in nodes:
            run = self.config.kafka_dir(self.run, node)
            argv = [*self._kafka_jvm(java, libs, run), KAFKA_MAIN, str(run / "server.properties")]
            self.daemon(broker_name(node)).start(argv, run / "logs" / "stdout.log")

    def _start_cassandra(self, java: str, libs: Path) -> None:
        run = self.run / "cassandra"
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "triggers"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        template = (_FILES / "cassandra" / "cassandra.yaml").read_text()
        secrets = self.secrets
        secure = SecureCassandra(secrets.certificates.keystore, secrets.certificates.ca) if secrets else None
        (run / "cassandra.yaml").write_text(cassandra_yaml(template, self.config, run, secure))
        options = [
            line.strip()
            for line in (_FILES / "cassandra" / "jvm17.options").read_text().splitlines()
            if line.strip().startswith("-")
        ]
        jamm = sorted(libs.glob("jamm-*.jar"))
        agent = [f"-javaagent:{jamm[0]}"] if jamm else []
        argv = [
            java,
            "-Xms1G",
            "-Xmx1G",
            *options,
            *agent,
            f"-XX:HeapDumpPath={run / 'logs'}",
            f"-Dcassandra.config=file://{run / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={run}",
            f"-Dcassandra.logdir={run / 'logs'}",
            f"-Dcassandra.triggers_dir={run / 'triggers'}",
            f"-Dlogback.configurationFile={_FILES / 'cassandra' / 'logback.xml'}",
            "-Dcassandra-foreground=yes",
            *(["-Dcassandra.superuser_setup_delay_ms=0"] if secure else []),  # the default role at once
            "-cp",
            f"{libs}/*",
            CASSANDRA_MAIN,
        ]
        self.cassandra.start(argv, run / "logs" / "stdout.log")

    async def _wait_ready(self, timeout: float) -> str | None:
        secrets = self.secrets
        kafka_login = secrets.kafka() if secrets else None
        kafka = kafka_ready(self.bootstrap, timeout, brokers=self.config.brokers, login=kafka_login)
        if not self.config.cassandra:
            await kafka
            return None
        native, login = self.config.cassandra_ports[0], secrets.cassandra() if secrets else None
        _, version = await asyncio.gather(kafka, asyncio.to_thread(cassandra_ready, HOST, native, timeout, login))
        return version


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0
