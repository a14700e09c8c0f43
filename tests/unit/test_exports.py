"""Each package's facade is pinned: a name added or removed is a deliberate change to this file."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import storage
import streams

PINNED = {
    "storage": ["CassandraConnection", "CassandraTarget", "FinishedRun", "HistorySize", "HistoryWriter", "RunPage",
                "RunRow", "RunStore", "StorageError", "migrate"],
    "streams": [
        "Client", "DelayProcessor", "DelayStats", "DevStack", "DevStackError", "HistoryMaterializer",
        "HookDeliveryError", "MaterializerStats", "Orchestrator", "OrchestratorStats", "RunInfo", "ServerStatus",
        "Settings", "StepWorker", "TOPIC_SPECS", "TopicSpec", "Topics", "WorkerStats", "create_topics",
    ],
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_facade_exports_exactly_the_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PINNED[package])
    assert all(hasattr(module, name) for name in module.__all__)


def test_engine_imports_no_infrastructure() -> None:
    code = ("import sys, engine; bad = [m for m in ('aiokafka', 'faust', 'cassandra', 'fastavro', 'avro') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_schemas_imports_no_kafka_or_cassandra() -> None:
    code = ("import sys, schemas; bad = [m for m in ('aiokafka', 'faust', 'cassandra') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_storage_and_streams_are_importable_facades() -> None:
    assert storage.StorageError.retryable is True
    assert streams.Topics("p").inbox == "p.inbox"
