"""What the ops commands compute (nothing here prints): run views from Cassandra (``kflow runs``), replay checks
(``kflow replay``), compaction (``kflow compact``) and re-materialization (``kflow replay --rebuild``)."""

from streams.ops._compact import CompactedRun, CompactReport, compact, marker_size, parse_older_than
from streams.ops._rebuild import RebuildError, RebuildReport, rebuild
from streams.ops._replay import (ReplayOutcome, parse_since, replay_history, replay_runs, replay_stored,
                                 replay_summary, require_workflow, runs_of_workflow)
from streams.ops._views import (ChildRun, OpsError, RunQueries, RunView, describe_run, event_fields, events_json,
                                events_table, format_duration, format_time, purged_note, require_run, run_json,
                                run_store, runs_json, runs_table, show_json, show_text, table)

__all__ = [
    "OpsError", "RunQueries", "run_store", "RunView", "ChildRun", "describe_run", "require_run",
    "table", "format_time", "format_duration", "run_json", "runs_table", "runs_json", "show_text", "show_json",
    "event_fields", "events_table", "events_json", "purged_note",
    "ReplayOutcome", "replay_history", "replay_stored", "replay_runs", "replay_summary", "require_workflow",
    "parse_since", "runs_of_workflow",
    "compact", "CompactReport", "CompactedRun", "marker_size", "parse_older_than",
    "rebuild", "RebuildReport", "RebuildError",
]
