"""The client: start runs, wait for their results, cancel them, resume hooks, read histories, list runs, manage
schedules (``Client``, and what it reports)."""

from streams.client._client import Client
from streams.client._completions import CompletionsReader
from streams.client._hook_answers import HookAnswer, HookAnswerMatcher
from streams.client._outcomes import HookDeliveryError, RunInfo, outcome_of, run_info
from streams.client._run_history import HistorySource
from streams.client._run_ids import RUN_ID_NAMESPACE, run_id_for, run_id_of_token, workflow_name_of
from streams.client._run_queries import RunList, info_of_row, walk_chain
from streams.client._schedule_commands import (
    ScheduleActivation,
    ScheduleAnswer,
    ScheduleAnswerMatcher,
    ScheduleChannel,
    check_id,
    epoch_ms,
    is_declared,
    overlap_value,
    spec_text,
)
from streams.client._schedules import Schedules
from streams.client._watch import PartitionWatch, read_to_end

__all__ = [
    "Client",
    "RunInfo",
    "RunList",
    "HookDeliveryError",
    "Schedules",
    "ScheduleActivation",
    "HistorySource",
    "run_id_for",
    "run_id_of_token",
    "workflow_name_of",
    "RUN_ID_NAMESPACE",
    "outcome_of",
    "run_info",
    "info_of_row",
    "walk_chain",
    "CompletionsReader",
    "HookAnswer",
    "HookAnswerMatcher",
    "ScheduleAnswer",
    "ScheduleAnswerMatcher",
    "ScheduleChannel",
    "check_id",
    "epoch_ms",
    "is_declared",
    "overlap_value",
    "spec_text",
    "PartitionWatch",
    "read_to_end",
]
