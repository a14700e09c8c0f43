"""The local-server plumbing without starting servers: pid files, tool discovery, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from streams import DevStack, DevStackError
from streams.dev import Daemon, fetch_jars, find_java17


def test_stale_pid_file_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "kafka.pid"
    pid_file.write_text(f"{dead.pid}\n")
    assert Daemon("kafka", pid_file, "kafka.Kafka").pid() is None
    assert not pid_file.exists()


def test_pid_reused_by_another_program_is_not_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "kafka.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but it is pytest, not kafka.Kafka
    assert Daemon("kafka", pid_file, "kafka.Kafka").pid() is None
    assert not pid_file.exists()


def test_garbage_pid_file_reads_as_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "kafka.pid"
    pid_file.write_text("not a pid")
    assert Daemon("kafka", pid_file, "kafka.Kafka").pid() is None


def test_running_daemon_is_found_and_stopped(tmp_path: Path) -> None:
    daemon = Daemon("sleeper", tmp_path / "s.pid", "kflow-sleeper-marker")
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "kflow-sleeper-marker"]
    with warnings.catch_warnings(record=True) as caught:
        # The server outlives the Popen that started it (the point of a daemon): Popen.__del__ says so.
        warnings.simplefilter("always", ResourceWarning)
        pid = daemon.start(argv, tmp_path / "logs" / "out.log")
    assert all(issubclass(w.category, ResourceWarning) and "is still running" in str(w.message) for w in caught)
    try:
        deadline = time.monotonic() + 10
        while daemon.pid() != pid and time.monotonic() < deadline:  # /proc shows argv once exec completes
            time.sleep(0.01)
        assert daemon.pid() == pid and (daemon.rss_mib() or 0) > 0
        assert daemon.stop(timeout=10) == f"sleeper: stopped (pid {pid})"  # SIGTERM, then reaped
        assert daemon.pid() is None and not (tmp_path / "s.pid").exists()
    finally:
        if daemon.pid() is not None:  # a failed assertion above: do not leave the sleeper behind
            daemon.stop(timeout=10)


def test_status_of_a_fresh_home_is_stopped(tmp_path: Path) -> None:
    statuses = DevStack(tmp_path).status()
    assert [(s.name, s.pid) for s in statuses] == [("kafka", None), ("cassandra", None)]
    assert "stopped" in statuses[0].describe()


def test_missing_java_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(DevStackError) as err:
        find_java17(jvm_root=tmp_path)
    assert "install openjdk-17-jre-headless or set JAVA_HOME" in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_java_version_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"25.0.1\" 2025-10-21' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(DevStackError, match=r"found .*java \(Java 25\)"):
        find_java17(jvm_root=tmp_path / "none")


def test_missing_maven_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    with pytest.raises(DevStackError, match=r"needs Maven .*install maven") as err:
        fetch_jars(pom, tmp_path / "work", "libs")
    assert "\n" not in str(err.value)
