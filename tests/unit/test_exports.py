"""Each package's facade is pinned: a name added or removed is a deliberate change to this file."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import storage
import streams

PINNED = {
    "streams": [
        "Client",
        "DevStack",
        "DevStackError",
        "HistoryMaterializer",
        "HookDeliveryError",
        "InternalTopicError",
        "MaterializerStats",
        "Orchestrator",
        "OrchestratorStats",
        "PartitionLag",
        "RunInfo",
        "Schedules",
        "ServerStatus",
        "Settings",
        "StepWorker",
        "TOPIC_SPECS",
        "TimerProcessor",
        "TimerStats",
        "TopicSpec",
        "Topics",
        "WorkerStats",
        "committed_lag",
        "create_topics",
        "partition_counts",
        "partition_for",
        "topic_config",
    ],
    "streams.client": [
        "Client",
        "CompletionsReader",
        "HistorySource",
        "HookAnswer",
        "HookAnswerMatcher",
        "HookDeliveryError",
        "PartitionWatch",
        "RUN_ID_NAMESPACE",
        "RunInfo",
        "ScheduleActivation",
        "ScheduleAnswer",
        "ScheduleAnswerMatcher",
        "Schedules",
        "check_id",
        "epoch_ms",
        "is_declared",
        "outcome_of",
        "overlap_value",
        "read_to_end",
        "run_id_for",
        "run_id_of_token",
        "run_info",
        "spec_text",
        "workflow_name_of",
    ],
    "streams.processors": [
        "ArmedTimer",
        "ChangelogError",
        "ChangelogFold",
        "HistoryMaterializer",
        "MaterializerStats",
        "OffsetTracker",
        "Orchestrator",
        "OrchestratorStats",
        "Output",
        "PartitionLogic",
        "PartitionTimers",
        "RestoredTimers",
        "RunCache",
        "StepWorker",
        "TimerChangelog",
        "TimerHead",
        "TimerIndex",
        "TimerKey",
        "TimerProcessor",
        "TimerStats",
        "WorkerStats",
        "changelog_key",
        "dead_letter",
    ],
    "streams.ops": [
        "ChildRun",
        "CompactReport",
        "CompactedRun",
        "OpsError",
        "RebuildError",
        "RebuildReport",
        "ReplayOutcome",
        "RunQueries",
        "RunView",
        "compact",
        "describe_run",
        "event_fields",
        "events_json",
        "events_table",
        "format_duration",
        "format_time",
        "marker_size",
        "parse_older_than",
        "parse_since",
        "purged_note",
        "rebuild",
        "replay_history",
        "replay_runs",
        "replay_stored",
        "replay_summary",
        "require_run",
        "require_workflow",
        "run_json",
        "run_store",
        "runs_json",
        "runs_of_workflow",
        "runs_table",
        "show_json",
        "show_text",
        "table",
    ],
    "streams.dev": [
        "Daemon",
        "DevStack",
        "DevStackError",
        "Say",
        "Scenario",
        "ServerStatus",
        "cassandra_ready",
        "fetch_jars",
        "find_java17",
        "history_lines",
        "kafka_ready",
        "run_example",
        "smoke_roundtrip",
    ],
    "streams.cli": [
        "AppLoadError",
        "build_parser",
        "load_registry",
        "main",
    ],
    "schemas": [
        "Codec",
        "Decoded",
        "PayloadError",
        "RecordCodec",
        "SchemaError",
        "decode_payload",
        "encode_payload",
    ],
    "storage": [
        "CassandraConnection",
        "CassandraTarget",
        "FinishedRun",
        "HistorySize",
        "HistoryWriter",
        "RunPage",
        "RunRow",
        "RunStore",
        "StorageError",
        "migrate",
    ],
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_facade_exports_exactly_the_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PINNED[package])
    assert all(hasattr(module, name) for name in module.__all__)


def test_engine_imports_no_infrastructure() -> None:
    code = (
        "import sys, engine; bad = [m for m in ('aiokafka', 'faust', 'cassandra', 'fastavro', 'avro') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_schemas_imports_no_kafka_or_cassandra() -> None:
    code = (
        "import sys, schemas; bad = [m for m in ('aiokafka', 'faust', 'cassandra') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_storage_and_streams_are_importable_facades() -> None:
    assert storage.StorageError.retryable is True
    assert streams.Topics("p").inbox == "p.inbox"
