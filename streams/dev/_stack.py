"""``kflow dev``: a real single-node Kafka (KRaft) and Cassandra on 127.0.0.1, from Maven jars, no Docker.

Jars are fetched once into ``<home>/jars``; data and logs live in ``<home>/run``. Servers are started
detached, found again through pid files, and reported ready only after a real client round trip.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.dev._jvm import Daemon, DevStackError, fetch_jars, find_java17
from streams.dev._readiness import cassandra_ready, kafka_ready

Say = Callable[[str], None]
_FILES = Path(__file__).parent / "servers"
KAFKA_VERSION = "4.1.2"
CASSANDRA_VERSION = "5.0.8"
KAFKA_MAIN = "kafka.Kafka"
CASSANDRA_MAIN = "org.apache.cassandra.service.CassandraDaemon"
KAFKA_PORTS = (9092, 9093)
CASSANDRA_PORTS = (9042, 7000)

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
        """One human line: ``kafka  running  pid 123  127.0.0.1:9092  412 MiB  <dir>``."""
        if self.pid is None:
            return f"{self.name:<10} stopped   {'':<10} {self.run_dir}"
        ports = ",".join(str(p) for p in self.ports)
        rss = f"{self.rss_mib:.0f} MiB" if self.rss_mib is not None else "?"
        return f"{self.name:<10} running   pid {self.pid:<6} 127.0.0.1:{ports:<10} {rss:>9}  {self.run_dir}"


class DevStack:
    """The local Kafka + Cassandra pair behind ``kflow dev up|down|status``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.run = home / "run"
        self.kafka = Daemon("kafka", self.run / "kafka" / "kafka.pid", KAFKA_MAIN)
        self.cassandra = Daemon("cassandra", self.run / "cassandra" / "cassandra.pid", CASSANDRA_MAIN)

    def status(self) -> list[ServerStatus]:
        """Status of both servers (pid files checked against /proc; stale ones removed)."""
        return [
            ServerStatus("kafka", self.kafka.pid(), KAFKA_PORTS, self.kafka.rss_mib(), self.run / "kafka"),
            ServerStatus(
                "cassandra", self.cassandra.pid(), CASSANDRA_PORTS, self.cassandra.rss_mib(), self.run / "cassandra"
            ),
        ]

    def up(self, timeout: float = 240.0, log: Say = print) -> None:
        """Fetch jars if needed, start what is not running, return once both answer real clients.

        Raises:
            DevStackError: on a missing tool, a port taken by another program, or a server not ready in time.
        """
        started = time.monotonic()
        need_kafka, need_cassandra = self.kafka.pid() is None, self.cassandra.pid() is None
        for name, needed, ports in (("kafka", need_kafka, KAFKA_PORTS), ("cassandra", need_cassandra, CASSANDRA_PORTS)):
            if not needed:
                log(f"{name}: already running")
                continue
            for port in ports:
                if _port_open(port):
                    raise DevStackError(
                        f"port {port} on 127.0.0.1 is taken by another program; "
                        f"stop it before kflow dev up ({name} needs it)"
                    )
        if need_kafka or need_cassandra:
            java = find_java17()
            jars_started = time.monotonic()
            kafka_libs = fetch_jars(_FILES / "kafka" / "pom.xml", self.home / "jars" / f"kafka-{KAFKA_VERSION}", "libs")
            cassandra_libs = fetch_jars(
                _FILES / "cassandra" / "pom.xml", self.home / "jars" / f"cassandra-{CASSANDRA_VERSION}", "lib"
            )
            log(f"jars ready in {time.monotonic() - jars_started:.1f}s ({self.home / 'jars'})")
            if need_cassandra:  # the slower one first
                self._start_cassandra(java, cassandra_libs)
            if need_kafka:
                self._start_kafka(java, kafka_libs)
        try:
            versions = asyncio.run(_wait_both(timeout))
        except DevStackError:
            raise DevStackError(f"servers not ready after {timeout:.0f}s; logs: {self.run}/*/logs") from None
        log(
            f"kafka ready on 127.0.0.1:9092 (produce+consume round trip); "
            f"cassandra {versions} ready on 127.0.0.1:9042 (SELECT release_version)"
        )
        log(f"up in {time.monotonic() - started:.1f}s")

    def down(self, wipe: bool = False, log: Say = print) -> None:
        """Stop both servers gracefully (SIGTERM, SIGKILL after a timeout); ``wipe`` deletes their data."""
        log(self.kafka.stop(timeout=30))
        log(self.cassandra.stop(timeout=45))
        if wipe and self.run.exists():
            shutil.rmtree(self.run)
            log(f"wiped {self.run}")

    def _start_kafka(self, java: str, libs: Path) -> None:
        run = self.run / "kafka"
        (run / "logs").mkdir(parents=True, exist_ok=True)
        props = (_FILES / "kafka" / "server.properties").read_text().replace("@DATA_DIR@", str(run / "data"))
        (run / "server.properties").write_text(props)
        jvm = [
            java,
            *_KAFKA_JVM,
            f"-Dkafka.logs.dir={run / 'logs'}",
            f"-Dlog4j2.configurationFile={_FILES / 'kafka' / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
        ]
        if not (run / "data" / "meta.properties").exists():
            # what `kafka-storage.sh format -t $(kafka-storage.sh random-uuid) -c server.properties` does;
            # a Kafka Uuid is 16 random bytes in URL-safe base64 without padding.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(run / "server.properties"),
                "--ignore-formatted",
            ]
            _run_checked(fmt, "kafka storage format")
        self.kafka.start([*jvm, KAFKA_MAIN, str(run / "server.properties")], run / "logs" / "stdout.log")

    def _start_cassandra(self, java: str, libs: Path) -> None:
        run = self.run / "cassandra"
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "triggers"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        yaml = (_FILES / "cassandra" / "cassandra.yaml").read_text().replace("@RUN@", str(run))
        (run / "cassandra.yaml").write_text(yaml)
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
            "-cp",
            f"{libs}/*",
            CASSANDRA_MAIN,
        ]
        self.cassandra.start(argv, run / "logs" / "stdout.log")


async def _wait_both(timeout: float) -> str:
    _, version = await asyncio.gather(
        kafka_ready("127.0.0.1:9092", timeout),
        asyncio.to_thread(cassandra_ready, "127.0.0.1", 9042, timeout),
    )
    return version


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run_checked(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise DevStackError(f"{what} failed (exit {done.returncode}):\n{tail}")
