"""``--metrics-port`` and ``--log-format json`` on ``kflow processor`` and ``kflow worker`` as processes: a run with a
retry moves the counters on ``/metrics``, ``/healthz`` and ``/readyz`` answer 200, the worker's log lines are JSON and
the step's own line carries the run id."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import Client, Settings
from support import eventually

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:  # not listening yet
        return 0, str(error)


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def answers_200(port: int, path: str, logs: Path) -> str:
    async def ok() -> str:
        status, body = get(port, path)
        return body if status == 200 else ""

    return await eventually(ok, timeout=90, interval=0.5, what=lambda: f"{path} 200; logs:\n{logs.read_text()[-3000:]}")


async def test_metrics_health_and_json_logs_of_processor_and_worker(fresh: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": fresh.topic_prefix,
        "KFLOW_KEYSPACE": fresh.keyspace,
        "KFLOW_PARTITIONS": str(fresh.partitions),
        "KFLOW_BOOTSTRAP": fresh.bootstrap,
        "KFLOW_CASSANDRA": fresh.cassandra,
        "KFLOW_HOME": str(tmp_path / "home"),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    ports = {"processor": free_port(), "worker": free_port()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for command, port in ports.items():
        with open(tmp_path / f"{command}.log", "ab") as log:  # the child has its own copy of the file
            argv = [sys.executable, "-m", "streams.cli", command, "-A", "observe_workflows"]
            procs[command] = subprocess.Popen(
                [*argv, "--metrics-port", str(port), "--log-format", "json"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    try:
        for command, port in ports.items():
            body = await answers_200(port, "/readyz", tmp_path / f"{command}.log")
            assert json.loads(body)["status"] == "ready"
            status, body = get(port, "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok", body
        async with Client(settings=fresh) as client:
            run_id = await client.start("observed", "o-1")
            assert await client.result(run_id, timeout=60) == "receipt-o-1"

        async def processor_counted() -> str:
            text = get(ports["processor"], "/metrics")[1]
            finished = sample(text, "kflow_runs_finished_total", workflow="observed", status="completed")
            return text if finished >= 1 else ""

        processor = await eventually(processor_counted, timeout=30, interval=0.5, what="the run counted as finished")
        assert sample(processor, "kflow_runs_started_total", workflow="observed") >= 1
        assert sample(processor, "kflow_transaction_seconds_count") >= 1
        assert sample(processor, "kflow_partition_adoption_seconds_count") >= 1
        assert sample(processor, "kflow_timer_lateness_seconds_count") >= 1  # the retry waited on a timer
        assert 'kflow_consumer_lag{group="' + fresh.topic_prefix + '.orchestrator"' in processor
        worker = get(ports["worker"], "/metrics")[1]
        assert sample(worker, "kflow_step_executions_total", step="flaky") == 2
        assert sample(worker, "kflow_step_failures_total", step="flaky") == 1
        assert sample(worker, "kflow_step_retries_total", step="flaky") == 1
        assert sample(worker, "kflow_step_duration_seconds_count", step="flaky") == 2
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
    assert [proc.returncode for proc in procs.values()] == [0, 0]
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines() if line.startswith("{")]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    charging = [line for line in lines if line["message"].startswith("charging o-1")]
    assert len(charging) == 2
    assert all((line["run_id"], line["workflow"], line["step"]) == (run_id, "observed", "flaky") for line in charging)
    text = (tmp_path / "processor.log").read_text()
    processor_lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    adopted = [
        line for line in processor_lines if line["message"].startswith("partition ") and "adopted" in line["message"]
    ]
    assert adopted and all(isinstance(line["partition"], int) for line in adopted)
