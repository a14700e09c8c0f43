"""The processes under test (``kflow processor`` / ``kflow worker``) and the servers they run on.

``Fleet`` starts each process as ``sys.executable -m streams.cli ROLE -A bench.chaos.workflows`` with its own
``KFLOW_HOME`` (as if each ran on its own host) and a log file under the run folder, and applies signals to it.
``SharedStack`` is the default ``kflow dev up`` stack: used as it is, never faulted. ``PrivateStack`` is a stack
of this run's own (``KFLOW_HOME`` under the run folder, ``KFLOW_DEV_PORT_OFFSET``), the only one whose servers
a fault may kill; it needs ``kflow dev up --brokers`` (``private_stack_supported``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = "bench.chaos.workflows"
KFLOW = [sys.executable, "-m", "streams.cli"]


@dataclass
class Process:
    """One process under test: restartable, its pids remembered (the checker attributes re-executions)."""

    name: str
    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        """Start (again), appending to the process's log."""
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            out.write(f"--- {time.strftime('%H:%M:%S')} start {self.name}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.pids.append(self.popen.pid)

    @property
    def pid(self) -> int:
        """The running process's pid."""
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process runs (a stopped one counts as running)."""
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process (only to it: never by name)."""
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to end; its exit status, or None when it still runs after ``timeout`` s."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30.0, *, signalled: bool = False) -> int | None:
        """SIGCONT + SIGTERM (once: a second SIGTERM may cut a graceful stop short), SIGKILL after ``timeout`` s;
        the exit status (None: never started)."""
        if self.popen is None:
            return None
        if not signalled:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
        status = self.wait(timeout)
        if status is None:
            self.signal(signal.SIGKILL)
            status = self.wait(30)
        return status


@dataclass
class Fleet:
    """The processors and workers of one chaos run, each with its own ``KFLOW_HOME`` and log."""

    folder: Path
    env: dict[str, str]
    log_level: str = "WARNING"
    processes: list[Process] = field(default_factory=list)

    def add(self, role: str, index: int) -> Process:
        """Create (not start) ``<role>-<index>``: a ``processor`` or a ``worker``."""
        name = f"{role}-{index}"
        home = self.folder / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        argv = [*KFLOW, role, "-A", APP, "--log-level", self.log_level]
        process = Process(name, role, argv, {**self.env, "KFLOW_HOME": str(home)}, self.folder / f"{name}.log")
        self.processes.append(process)
        return process

    def of(self, role: str) -> list[Process]:
        """The processes of one role."""
        return [p for p in self.processes if p.role == role]

    def start_all(self) -> None:
        """Start every process not running."""
        for process in self.processes:
            if not process.alive():
                process.start()

    def stop_all(self) -> dict[str, int | None]:
        """Stop every process (SIGTERM, then SIGKILL); their exit statuses by name."""
        running = {process.name for process in self.processes if process.alive()}
        for process in self.processes:  # signal all first: they stop in parallel
            if process.name in running:
                process.signal(signal.SIGCONT)
                process.signal(signal.SIGTERM)
        return {p.name: p.stop(signalled=p.name in running) for p in self.processes}


def process_env(bootstrap: str, cassandra: str, keyspace: str, prefix: str, partitions: int, chaos_dir: Path) -> dict:
    """The environment every process of the run gets (``KFLOW_HOME`` is added per process)."""
    return {
        **os.environ,
        "KFLOW_BOOTSTRAP": bootstrap,
        "KFLOW_CASSANDRA": cassandra,
        "KFLOW_KEYSPACE": keyspace,
        "KFLOW_TOPIC_PREFIX": prefix,
        "KFLOW_PARTITIONS": str(partitions),
        "KFLOW_CHAOS_DIR": str(chaos_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def kflow(args: list[str], env: dict[str, str], timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run one ``kflow`` command to its end (output captured)."""
    return subprocess.run([*KFLOW, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def private_stack_supported() -> bool:
    """Whether ``kflow dev up`` can start a multi-broker stack (``--brokers``) on shifted ports."""
    done = kflow(["dev", "up", "--help"], dict(os.environ), timeout=60)
    return "--brokers" in done.stdout


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class Server:
    """One server of a stack as ``kflow dev status --json`` reports it."""

    name: str
    pid: int | None
    ports: tuple[int, ...]


class SharedStack:
    """The default local stack (or ``KFLOW_BOOTSTRAP`` / ``KFLOW_CASSANDRA``): used, never faulted or stopped."""

    private = False

    def __init__(self, bootstrap: str, cassandra: str) -> None:
        self.bootstrap, self.cassandra = bootstrap, cassandra

    def servers(self) -> list[Server]:
        """Nothing here may be faulted."""
        return []

    def down(self) -> None:
        """Leave the shared stack alone."""


class PrivateStack:
    """A stack of this run's own: ``KFLOW_HOME=<folder>`` and ``KFLOW_DEV_PORT_OFFSET=<offset>``.

    The jars folder is a link to the shared cache's (read only), so nothing is downloaded again. ``down`` stops
    and wipes the stack; it is the one stack a fault may kill servers of.
    """

    private = True

    def __init__(self, folder: Path, offset: int, brokers: int, *, cassandra: bool, say: Callable[[str], None]):
        self.folder, self.offset, self.brokers, self.with_cassandra, self.say = folder, offset, brokers, cassandra, say
        self.env = {**os.environ, "KFLOW_HOME": str(folder), "KFLOW_DEV_PORT_OFFSET": str(offset)}
        for name in ("KFLOW_BOOTSTRAP", "KFLOW_CASSANDRA"):
            self.env.pop(name, None)
        self.bootstrap = ""
        self.cassandra = ""

    def up(self) -> None:
        """Start the stack (first time: with ``--brokers``), then learn its ports."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shared_jars = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kflow" / "jars"
        if shared_jars.is_dir() and not (self.folder / "jars").exists():
            (self.folder / "jars").symlink_to(shared_jars)
        args = ["dev", "up", "--brokers", str(self.brokers)] + ([] if self.with_cassandra else ["--kafka-only"])
        done = kflow(args, self.env)
        if done.returncode != 0:
            raise RuntimeError(f"kflow dev up (private stack) failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        kafka = [s for s in self.servers() if s.name.startswith("kafka")]
        self.bootstrap = ",".join(f"127.0.0.1:{s.ports[0]}" for s in kafka)
        cassandra = [s for s in self.servers() if s.name == "cassandra"]
        if cassandra:
            self.cassandra = f"127.0.0.1:{cassandra[0].ports[0]}"

    def restart_missing(self) -> float:
        """``kflow dev up`` again: restart whichever server is not running; seconds it took."""
        started = time.monotonic()
        done = kflow(["dev", "up"], self.env)
        if done.returncode != 0:
            raise RuntimeError(f"kflow dev up (restart) failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return time.monotonic() - started

    def servers(self) -> list[Server]:
        """The stack's servers, from ``kflow dev status --json``."""
        done = kflow(["dev", "status", "--json"], self.env, timeout=60)
        return [Server(s["name"], s.get("pid"), tuple(s.get("ports", ()))) for s in json.loads(done.stdout or "[]")]

    def server(self, name: str) -> Server:
        """One server by name (``kafka-1``, …, ``cassandra``)."""
        return next(s for s in self.servers() if s.name == name)

    def kill(self, name: str, sig: signal.Signals) -> int:
        """Send ``sig`` to one of this stack's servers (its pid from the stack's own status); the pid."""
        pid = self.server(name).pid
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, sig)
        return pid

    def down(self) -> None:
        """Stop every server of the stack and delete its data."""
        with contextlib.suppress(Exception):
            done = kflow(["dev", "down", "--wipe"], self.env)
            self.say(f"private stack down: {done.stdout.strip()[-500:]}")
