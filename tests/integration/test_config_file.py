"""The configuration file and the Kafka connection object on the real (plaintext) stack: the ``kflow`` command, the
processors and the client, configured by a TOML file alone (no ``KFLOW_*`` variable), run a workflow end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Registry
from streams import KafkaTarget, Settings
from streams.client import Client
from streams.processors import Orchestrator, StepWorker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def kflow(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    command = [sys.executable, "-m", "streams.cli", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, env=clean, cwd=ROOT, timeout=120, check=False)


async def test_a_workflow_runs_end_to_end_configured_by_a_file(settings: Settings, tmp_path: Path) -> None:
    prefix, keyspace = f"{settings.topic_prefix}-cfg", f"{settings.keyspace}_cfg"  # dropped with the session's
    config = tmp_path / "kflow.toml"
    config.write_text(
        f'topic_prefix = "{prefix}"\nkeyspace = "{keyspace}"\npartitions = {settings.partitions}\n'
        f'[kafka]\nbootstrap = "{settings.bootstrap}"\nsecurity_protocol = "PLAINTEXT"\ncheck_hostname = false\n'
        f'[cassandra]\ncontact_points = "{settings.cassandra}"\n'
    )
    created = kflow(config, "topics", "create", "--json")
    assert created.returncode == 0, created.stderr
    assert {row["topic"] for row in json.loads(created.stdout)} >= {f"{prefix}.inbox", f"{prefix}.history"}
    migrated = kflow(config, "storage", "migrate", "--json")
    assert migrated.returncode == 0 and json.loads(migrated.stdout)["keyspace"] == keyspace, migrated.stderr

    own = Settings.from_env({}, config=config)
    assert (own.topic_prefix, own.keyspace) == (prefix, keyspace)
    assert own.kafka_target() == KafkaTarget(settings.bootstrap, check_hostname=False)
    registry = Registry.from_module("e2e_workflows")
    orchestrator, worker = Orchestrator(own, registry), StepWorker(own, registry, concurrency=4)
    for service in (orchestrator, worker):
        await service.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            run_id = await client.start("sum_three", 1, 2, 3)
            assert await client.result(run_id, timeout=60) == 6
    finally:
        for service in (worker, orchestrator):
            await service.stop()
    lag = kflow(config, "runs", "lag", "--json")
    assert lag.returncode == 0 and json.loads(lag.stdout)["topic"] == f"{prefix}.history", lag.stderr
