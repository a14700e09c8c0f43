"""Each package's facade is pinned: a name added or removed is a deliberate change to this file."""

from __future__ import annotations

import importlib

import pytest

import schemas
import storage
import streams
from engine import KflowError

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
        "TopicDrift",
        "TopicDriftError",
        "TopicSpec",
        "Topics",
        "TransportError",
        "WorkerStats",
        "check_topics",
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
        "ScheduleChannel",
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
        "ProgressWatch",
        "RestoredTimers",
        "RunCache",
        "SNAPSHOT_AFTER_RECORDS",
        "StepWorker",
        "TimerChangelog",
        "TimerHead",
        "TimerIndex",
        "TimerKey",
        "TimerProcessor",
        "TimerStats",
        "WorkerStats",
        "changelog_key",
        "supervise",
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
        "CASSANDRA_VERSION",
        "Daemon",
        "DevStack",
        "DevStackError",
        "KAFKA_VERSION",
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
        "StackConfig",
        "cassandra_yaml",
        "kafka_properties",
        "stop_together",
    ],
    "streams.cli": [
        "AppLoadError",
        "CliError",
        "UsageError",
        "build_parser",
        "compact_report_json",
        "compact_report_text",
        "describe_hook_outcome",
        "describe_spec",
        "exit_status",
        "fire_time",
        "load_registry",
        "main",
        "parse_instant",
        "replay_json",
        "replay_progress_bar",
        "schedule_json",
        "schedule_text",
        "schedules_table",
        "updated_spec",
    ],
    "schemas": [
        "Codec",
        "Decoded",
        "PayloadError",
        "RecordCodec",
        "SchemaError",
        "decode_payload",
        "encode_payload",
        "learn_schema",
        "set_schema_source",
    ],
    "storage": [
        "CONSISTENCY_LEVELS",
        "CassandraConnection",
        "CassandraTarget",
        "FinishedRun",
        "HistorySize",
        "HistoryWriter",
        "MIGRATIONS_DIR",
        "PageCursor",
        "RunPage",
        "RunRow",
        "RunStore",
        "StorageError",
        "Write",
        "day_bucket",
        "day_range",
        "decode_page",
        "encode_page",
        "group_writes",
        "json_text",
        "load_migrations",
        "migrate",
        "parse_replication",
        "parse_statements",
        "to_ms",
    ],
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_facade_exports_exactly_the_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PINNED[package])
    assert all(hasattr(module, name) for name in module.__all__)


def test_storage_and_streams_are_importable_facades() -> None:
    assert storage.StorageError.retryable is True
    assert streams.Topics("p").inbox == "p.inbox"


@pytest.mark.parametrize("package", sorted(PINNED))
def test_every_exported_error_derives_from_kflow_error(package: str) -> None:
    module = importlib.import_module(package)
    errors = [obj for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert [e.__name__ for e in errors if not issubclass(e, KflowError)] == []
    assert all(isinstance(e.retryable, bool) for e in errors)


def test_transport_error_is_retryable_and_schema_errors_are_not() -> None:
    assert streams.TransportError.retryable is True and streams.TransportError.__module__ == "streams"
    assert not schemas.SchemaError.retryable and issubclass(schemas.PayloadError, KflowError)
