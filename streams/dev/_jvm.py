"""JVM plumbing for the local servers: find Java 17, resolve jars with Maven, run and stop daemons."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine import KflowError


class DevStackError(KflowError):
    """The local servers could not be fetched, started or stopped; the message says what to do."""

    retryable = False


_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java: str) -> int | None:
    """The major version of the ``java`` executable at ``java``, or None when it cannot run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _JAVA_VERSION.search(out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older print "1.8.0_x"
    return int(match.group(2) or 0) if major == 1 else major


def find_java17(jvm_root: Path = Path("/usr/lib/jvm")) -> str:
    """Path of a Java 17 runtime: ``$JAVA_HOME``, then ``java`` on PATH, then ``<jvm_root>/*17*``.

    Kafka 4.x brokers need Java 17+ and Cassandra 5.0 runs on 11 or 17 only, so 17 is the one both accept.

    Raises:
        DevStackError: when no Java 17 is installed.
    """
    candidates: list[str] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += [str(p) for p in sorted(jvm_root.glob("*17*/bin/java"))]
    seen: list[str] = []
    for candidate in candidates:
        major = java_major(candidate)
        if major == 17:
            return candidate
        seen.append(f"{candidate} (Java {major})" if major else candidate)
    found = f"; found {', '.join(seen)}" if seen else ""
    raise DevStackError(
        "kflow dev needs Java 17 (Kafka 4 and Cassandra 5.0 both run on it): "
        f"install openjdk-17-jre-headless or set JAVA_HOME{found}"
    )


def fetch_jars(pom: Path, workdir: Path, libs_subdir: str) -> Path:
    """Resolve the runtime jars of ``pom`` from Maven Central into ``workdir/target/<libs_subdir>``.

    Idempotent: a ``.complete`` stamp marks a finished download, so an interrupted one is redone.

    Raises:
        DevStackError: when Maven is missing or the resolution fails.
    """
    libs = workdir / "target" / libs_subdir
    stamp = workdir / ".complete"
    if stamp.exists() and any(libs.glob("*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevStackError("kflow dev needs Maven to fetch the server jars once: install maven (apt install maven)")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pom, workdir / "pom.xml")
    done = subprocess.run([mvn, "-q", "-B", "-f", str(workdir / "pom.xml"), "package"], capture_output=True, text=True)
    if done.returncode != 0 or not any(libs.glob("*.jar")):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise DevStackError(f"maven could not resolve {pom.parent.name} jars (exit {done.returncode}):\n{tail}")
    stamp.write_text(f"{len(list(libs.glob('*.jar')))} jars\n")
    return libs


@dataclass(frozen=True, slots=True)
class Daemon:
    """A server process we start detached and find again by its pid file."""

    name: str
    pid_file: Path
    main_class: str

    def pid(self) -> int | None:
        """The pid of the running server, or None; a stale pid file (dead or reused pid) is removed."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _is_our_process(pid, self.main_class):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], log_file: Path) -> int:
        """Start ``argv`` in its own session (it outlives this process), stdout+stderr to ``log_file``."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # posix_spawn, not Popen: a Popen dropped while its process runs warns (ResourceWarning) when it is
        # collected, and this process must not own the server; stop() and kill() reap it if it is our child.
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self.pid_file.write_text(f"{pid}\n")
        return pid

    def stop(self, timeout: float) -> str:
        """SIGTERM (the servers' graceful shutdown), SIGKILL after ``timeout`` seconds; says what it did."""
        pid = self.pid()
        if pid is None:
            return f"{self.name}: not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_our_process(pid, self.main_class):
            time.sleep(0.2)
        verb = "stopped"
        if _is_our_process(pid, self.main_class):
            os.kill(pid, signal.SIGKILL)
            verb = f"killed (did not stop within {timeout:.0f}s)"
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return f"{self.name}: {verb} (pid {pid})"

    def kill(self) -> str:
        """SIGKILL at once (a crash, for fault tests); says what it did."""
        pid = self.pid()
        if pid is None:
            return f"{self.name}: not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _is_our_process(pid, self.main_class):
            time.sleep(0.05)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return f"{self.name}: killed (pid {pid})"

    def rss_mib(self) -> float | None:
        """Resident memory of the running server in MiB (from /proc), or None."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


def stop_together(daemons: Sequence[Daemon], timeout: float, quorum: int = 1, grace: float = 5.0) -> list[str]:
    """SIGTERM every daemon at once (in the given order), SIGKILL whatever still runs after ``timeout`` seconds,
    or ``grace`` seconds after fewer than ``quorum`` of them are left; says what it did, one line each.

    ``quorum`` is for KRaft nodes: a combined broker+controller asks the controller quorum to approve its
    controlled shutdown, and once a majority of the nodes has exited no approval can come (it would wait
    minutes).
    """
    pids = {daemon.name: daemon.pid() for daemon in daemons}
    for daemon in daemons:
        pid = pids[daemon.name]
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    quorum_lost: float | None = None
    alive = {d.name: d for d in daemons if pids[d.name] is not None}
    while alive:
        alive = {n: d for n, d in alive.items() if _is_our_process(pids[n] or 0, d.main_class)}
        now = time.monotonic()
        if quorum_lost is None and len(alive) < quorum:
            quorum_lost = now
        if now - started > timeout or (quorum_lost is not None and now - quorum_lost > grace):
            break
        time.sleep(0.2)
    lines = []
    for daemon in daemons:
        pid = pids[daemon.name]
        if pid is None:
            lines.append(f"{daemon.name}: not running")
            continue
        verb = "stopped"
        if daemon.name in alive and _is_our_process(pid, daemon.main_class):
            os.kill(pid, signal.SIGKILL)
            waited = time.monotonic() - started
            verb = f"killed (did not stop within {waited:.0f}s" + (", its quorum gone)" if waited < timeout else ")")
        _reap(pid)
        daemon.pid_file.unlink(missing_ok=True)
        lines.append(f"{daemon.name}: {verb} (pid {pid})")
    return lines


def _is_our_process(pid: int, main_class: str) -> bool:
    # Invariant: a pid is ours only if it is alive, not a zombie, and runs our main class (pids get reused).
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    # An empty cmdline is a process between fork and exec (or a kernel thread): not proof of reuse.
    return state != "Z" and (not cmdline or main_class.encode() in cmdline)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def run_all(commands: Sequence[list[str]], what: str) -> None:
    """Run ``commands`` side by side (JVM start-up dominates); the first failure is raised with its output."""
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for argv in commands]
    failures = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            tail = "\n".join(out.strip().splitlines()[-10:])
            failures.append(f"{what} failed (exit {proc.returncode}):\n{tail}")
    if failures:
        raise DevStackError(failures[0])
