"""``kflow dev`` and ``kflow topics`` against the running servers, through the real console command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from streams import Settings, Topics

pytestmark = pytest.mark.integration


def kflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_up_twice_is_a_no_op_and_status_reports_both(servers: Settings) -> None:
    if os.environ.get("KFLOW_BOOTSTRAP"):
        pytest.skip("servers are external")
    before = json.loads(kflow("dev", "status", "--json").stdout)
    again = kflow("dev", "up")
    assert again.returncode == 0, again.stderr
    assert "kafka-1: already running" in again.stdout and "cassandra: already running" in again.stdout
    after = json.loads(kflow("dev", "status", "--json").stdout)
    assert [s["pid"] for s in before] == [s["pid"] for s in after]
    assert all(s["running"] and s["rss_mib"] > 0 for s in after)
    assert [s["name"] for s in after] == ["kafka-1", "cassandra"]  # one broker: the default stack


def test_topics_create_creates_every_topic_once(settings: Settings) -> None:
    prefix = f"{settings.topic_prefix}-cli"  # dropped with the session's topics (same prefix)
    env = {"KFLOW_TOPIC_PREFIX": prefix, "KFLOW_PARTITIONS": "2"}
    first, second = kflow("topics", "create", env=env), kflow("topics", "create", env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    names = Topics(prefix).all()
    assert [line.split() for line in first.stdout.splitlines()] == [[n, "created"] for n in names]
    assert [line.split() for line in second.stdout.splitlines()] == [[n, "exists"] for n in names]
    as_json = kflow("topics", "create", "--json", env=env)
    assert json.loads(as_json.stdout) == [{"topic": n, "created": False} for n in names], as_json.stderr


def test_bad_partition_setting_is_one_line(servers: Settings) -> None:
    done = kflow("topics", "create", env={"KFLOW_PARTITIONS": "many"})
    assert done.returncode == 2  # a bad setting is a usage error
    assert done.stderr == "kflow: error: KFLOW_PARTITIONS must be an integer, got 'many'\n"


def test_demo_runs_the_example_workflow_end_to_end(settings: Settings) -> None:
    """The README's main job: processor + worker + client for examples.basic, on a prefix of its own."""
    from pathlib import Path

    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": f"{settings.topic_prefix}-demo",
        "KFLOW_PARTITIONS": "2",
        "KFLOW_KEYSPACE": f"{settings.keyspace}_demo",
    }
    port = _free_port_pair()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "dev", "demo", "--metrics-port", str(port)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'charged': 9.5" in done.stdout and "'tries': 2" in done.stdout
    for event in ("StepFailed", "TimerElapsed", "WorkflowCompleted"):
        assert event in done.stdout
    # what the processor and the worker served on /metrics while the demo ran (scraped by the demo)
    assert f"curl http://127.0.0.1:{port}/metrics" in done.stdout
    assert 'kflow_runs_finished_total{status="completed",workflow="order"} 1.0' in done.stdout
    assert 'kflow_step_executions_total{step="reserve"} 2.0' in done.stdout
    assert 'kflow_step_retries_total{step="reserve"} 1.0' in done.stdout


def _free_port_pair() -> int:
    """A port P such that P and P + 1 are free now (the demo's processor and worker serve /metrics there)."""
    import socket

    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")
