"""The ``kflow`` command line: one module per command group, each parses, calls a facade, prints.

Errors: every kflow error is one line on stderr (``kflow: error: …``) with an exit status from ``exit_status``
(1 failed, 2 usage, 3 replay diverged, 4 Kafka or Cassandra unreachable); ``kflow --debug`` shows the traceback.
"""

from streams.cli._app import AppLoadError, load_registry
from streams.cli._call_args import parse_call
from streams.cli._compact import compact_report_json, compact_report_text
from streams.cli._errors import CliError, UsageError, exit_status
from streams.cli._hooks import describe_hook_outcome
from streams.cli._main import build_parser, main
from streams.cli._replay import replay_json, replay_progress_bar
from streams.cli._schedule_args import parse_instant, updated_spec
from streams.cli._schedule_text import describe_spec, fire_time, schedule_json, schedule_text, schedules_table

__all__ = [
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
    "parse_call",
    "parse_instant",
    "replay_json",
    "replay_progress_bar",
    "schedule_json",
    "schedule_text",
    "schedules_table",
    "updated_spec",
]
