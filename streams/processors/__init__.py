"""The long-running processors: the orchestrator (inbox -> history, step commands, timers, completions), the
timer processor (``.timers`` -> ``TimerFired``), the step worker (``.tasks`` -> ``StepResult``) and the history
materializer (``.history`` -> Cassandra), with the state each keeps."""

from streams.processors._health import BOARD as HEALTH_BOARD
from streams.processors._health import HealthBoard, ServiceHealth, liveness, loop_answers, readiness
from streams.processors._http import ObservabilityServer
from streams.processors._local_steps import LocalBounds, LocalSteps, local_predicate
from streams.processors._materializer import HistoryMaterializer, MaterializerStats
from streams.processors._metric_sources import watch_processor
from streams.processors._metrics import (
    DEAD_LETTER_KINDS,
    count_dead_letter,
    count_step,
    count_transition,
    dead_letter_kind,
    lag_family,
)
from streams.processors._metrics import REGISTRY as METRICS_REGISTRY
from streams.processors._metrics import STATS as METRIC_SOURCES
from streams.processors._metrics import Names as MetricNames
from streams.processors._offsets import OffsetTracker
from streams.processors._orchestrator import Orchestrator
from streams.processors._orchestrator_stats import OrchestratorStats
from streams.processors._outputs import Output, dead_letter
from streams.processors._partition_logic import PartitionLogic
from streams.processors._partition_state import SNAPSHOT_AFTER_RECORDS
from streams.processors._partition_timers import PartitionTimers
from streams.processors._run_cache import RunCache
from streams.processors._serve import ProgressWatch, supervise
from streams.processors._timer_changelog import (
    ChangelogError,
    ChangelogFold,
    RestoredTimers,
    TimerChangelog,
    changelog_key,
)
from streams.processors._timer_index import ArmedTimer, TimerHead, TimerIndex, TimerKey
from streams.processors._timer_inputs import TimerStats
from streams.processors._timer_processor import TimerProcessor
from streams.processors._worker import StepWorker, WorkerStats

__all__ = [
    "Orchestrator",
    "OrchestratorStats",
    "LocalSteps",
    "LocalBounds",
    "local_predicate",
    "PartitionLogic",
    "SNAPSHOT_AFTER_RECORDS",
    "RunCache",
    "TimerProcessor",
    "TimerStats",
    "PartitionTimers",
    "TimerIndex",
    "TimerHead",
    "ArmedTimer",
    "TimerKey",
    "TimerChangelog",
    "ChangelogFold",
    "RestoredTimers",
    "ChangelogError",
    "changelog_key",
    "StepWorker",
    "WorkerStats",
    "OffsetTracker",
    "HistoryMaterializer",
    "MaterializerStats",
    "ProgressWatch",
    "supervise",
    "Output",
    "dead_letter",
    "ObservabilityServer",
    "watch_processor",
    "METRICS_REGISTRY",
    "MetricNames",
    "dead_letter_kind",
    "HealthBoard",
    "ServiceHealth",
    "liveness",
    "readiness",
    "loop_answers",
    "HEALTH_BOARD",
    "METRIC_SOURCES",
    "DEAD_LETTER_KINDS",
    "count_dead_letter",
    "count_step",
    "count_transition",
    "lag_family",
]
