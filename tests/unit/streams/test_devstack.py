"""The local-server plumbing without starting servers: pid files, tool discovery, clear errors."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import streams.dev
from streams import DevStack, DevStackError
from streams.dev import Daemon, StackConfig, cassandra_yaml, fetch_jars, find_java17, kafka_properties, stop_together


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
        # The server outlives this process (the point of a daemon): no Popen is left to warn when collected.
        warnings.simplefilter("always", ResourceWarning)
        pid = daemon.start(argv, tmp_path / "logs" / "out.log")
        gc.collect()
    assert [str(w.message) for w in caught] == []
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
    assert [(s.name, s.pid, s.ports) for s in statuses] == [
        ("kafka-1", None, (9092, 9093)),
        ("cassandra", None, (9042, 7000)),
    ]
    assert statuses[0].run_dir == tmp_path / "run" / "kafka"  # a single broker keeps the pre-cluster layout
    assert "stopped" in statuses[0].describe()


# --- the stack's shape: ports, folders, rendered configuration, the remembered choice -------------------

TEMPLATE = (Path(streams.dev.__file__).parent / "servers" / "kafka" / "server.properties").read_text()


def props(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, _, value in pairs}


def test_one_broker_renders_the_template_unchanged(tmp_path: Path) -> None:
    rendered = kafka_properties(TEMPLATE, StackConfig(), 1, tmp_path / "data")
    assert rendered == TEMPLATE.replace("@DATA_DIR@", str(tmp_path / "data"))
    assert StackConfig().bootstrap == "127.0.0.1:9092"


def test_node_of_a_three_broker_cluster(tmp_path: Path) -> None:
    config = StackConfig(brokers=3, port_offset=1000)
    node2 = props(kafka_properties(TEMPLATE, config, 2, tmp_path / "kafka-2" / "data"))
    assert node2["node.id"] == "2" and node2["process.roles"] == "broker,controller"
    assert node2["controller.quorum.voters"] == "1@127.0.0.1:10093,2@127.0.0.1:10095,3@127.0.0.1:10097"
    assert (
        node2["listeners"]
        == node2["advertised.listeners"]
        == "PLAINTEXT://127.0.0.1:10094,CONTROLLER://127.0.0.1:10095"
    )
    assert node2["log.dirs"] == str(tmp_path / "kafka-2" / "data")
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert node2[key] == "3", key
    assert node2["min.insync.replicas"] == node2["transaction.state.log.min.isr"] == "2"
    assert config.bootstrap == "127.0.0.1:10092,127.0.0.1:10094,127.0.0.1:10096"
    assert config.server_names == ["kafka-1", "kafka-2", "kafka-3", "cassandra"]
    assert config.kafka_dir(tmp_path, 3) == tmp_path / "kafka-3"
    two = StackConfig(brokers=2)
    assert (two.replication_factor, two.min_insync_replicas) == (2, 1)
    assert (StackConfig(brokers=5).replication_factor, StackConfig(brokers=5).min_insync_replicas) == (3, 2)


def test_cassandra_ports_follow_the_offset(tmp_path: Path) -> None:
    template = (Path(streams.dev.__file__).parent / "servers" / "cassandra" / "cassandra.yaml").read_text()
    assert cassandra_yaml(template, StackConfig(), tmp_path) == template.replace("@RUN@", str(tmp_path))
    shifted = cassandra_yaml(template, StackConfig(port_offset=2000), tmp_path)
    assert "storage_port: 9000\n" in shifted and "native_transport_port: 11042\n" in shifted
    assert 'seeds: "127.0.0.1:9000"' in shifted


def test_the_choice_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(DevStack, "_start", lambda self, names, timeout, log: started.append(list(names)))
    DevStack(tmp_path, port_offset=1000).up(brokers=3, kafka_only=True)
    assert started == [["kafka-1", "kafka-2", "kafka-3"]]
    again = DevStack(tmp_path)  # a bare `kflow dev up`: same brokers, offset and servers
    assert again.config == StackConfig(brokers=3, port_offset=1000, cassandra=False)
    again.up()
    assert started[-1] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [s.name for s in again.status()] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [s.run_dir.name for s in again.status()] == ["kafka-1", "kafka-2", "kafka-3"]
    assert again.daemon("kafka-2").pid_file == tmp_path / "run" / "kafka-2" / "kafka.pid"
    with pytest.raises(DevStackError, match="no server 'cassandra' in this stack"):
        again.start_server("cassandra")


def test_resizing_a_stack_with_data_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DevStack, "_start", lambda self, names, timeout, log: None)
    DevStack(tmp_path).up(brokers=3)
    DevStack(tmp_path).up(brokers=1)  # nothing formatted yet: the new size just replaces the old one
    assert DevStack(tmp_path).config.brokers == 1
    (tmp_path / "run" / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "run" / "kafka" / "data" / "meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
    with pytest.raises(DevStackError) as err:
        DevStack(tmp_path).up(brokers=3)
    assert "kflow dev down --wipe before kflow dev up --brokers 3" in str(err.value) and "\n" not in str(err.value)
    assert DevStack(tmp_path).config.brokers == 1  # the refusal changed nothing
    DevStack(tmp_path).up(brokers=1)  # the same size is fine


def test_a_stack_from_before_stack_json_is_one_broker_at_offset_zero(tmp_path: Path) -> None:
    (tmp_path / "run" / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "run" / "kafka" / "data" / "meta.properties").write_text("cluster.id=abc\n")
    assert DevStack(tmp_path, port_offset=1000).config == StackConfig()  # its ports do not move under it
    assert DevStack(tmp_path / "new", port_offset=1000).config == StackConfig(port_offset=1000)


def test_bad_stack_sizes_and_offsets_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DevStackError, match="between 1 and 9"):
        StackConfig(brokers=0)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stack.json").write_text("{")
    with pytest.raises(DevStackError, match=r"stack\.json is unreadable"):
        DevStack(tmp_path)


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


def test_stop_together_kills_a_node_left_without_its_quorum(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    daemons = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # daemons outlive their Popen on purpose
        for name, code in (
            ("n3", "import time; time.sleep(60)"),
            ("n2", "import time; time.sleep(60)"),
            ("n1", stubborn),
        ):
            daemon = Daemon(name, tmp_path / f"{name}.pid", f"kflow-{name}-marker")
            daemon.start([sys.executable, "-c", code, f"kflow-{name}-marker"], tmp_path / f"{name}.log")
            daemons.append(daemon)
    deadline = time.monotonic() + 10
    while any(d.pid() is None for d in daemons) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the stubborn one has installed its SIGTERM handler
    started = time.monotonic()
    lines = stop_together(daemons, timeout=30, quorum=2, grace=0.5)
    assert time.monotonic() - started < 5  # not the 30 s timeout: the quorum was gone
    assert lines[0].startswith("n3: stopped (pid ") and lines[1].startswith("n2: stopped (pid ")
    assert lines[2].startswith("n1: killed") and "quorum gone" in lines[2]
    assert all(d.pid() is None for d in daemons)


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    """kafka-storage format would take ``-t -abc…`` for an option (one start in 64 failed before)."""
    import base64

    from streams.dev import random_cluster_id

    ids = [random_cluster_id() for _ in range(5_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)  # still a Kafka Uuid
