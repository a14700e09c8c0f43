"""kflow's composition root: Kafka topics, processors, workers, client, ops, local servers and the command line.

Rooms: ``streams.processors`` (orchestrator, timers, worker, materializer), ``streams.client``, ``streams.ops``,
``streams.dev`` (local servers), ``streams.cli``; shared: settings, topics and Kafka clients.
"""

from streams._errors import TransportError
from streams._kafka_target import KafkaTarget
from streams._keyspace import default_keyspace
from streams._logs import LOG_CONTEXT, JsonFormatter, configure_logging
from streams._partition_check import PartitionCountError, check_partition_counts, partition_mismatch
from streams._settings import Settings
from streams._topics import (
    TOPIC_SPECS,
    InternalTopicError,
    TopicDrift,
    TopicDriftError,
    Topics,
    TopicSpec,
    check_topics,
    create_topics,
    partition_counts,
    topic_config,
)
from streams._tracing import configure_traces, use_tracer_provider
from streams.client import Client, HookDeliveryError, RunInfo, RunList, Schedules
from streams.dev import DevStack, DevStackError, ServerStatus
from streams.kafka import PartitionLag, committed_lag, partition_for
from streams.processors import (
    HistoryMaterializer,
    MaterializerStats,
    Orchestrator,
    OrchestratorStats,
    StepWorker,
    TimerProcessor,
    TimerStats,
    WorkerStats,
)

__all__ = [
    "Client",
    "HistoryMaterializer",
    "HookDeliveryError",
    "MaterializerStats",
    "Orchestrator",
    "OrchestratorStats",
    "RunInfo",
    "RunList",
    "Schedules",
    "ServerStatus",
    "DevStack",
    "DevStackError",
    "Settings",
    "KafkaTarget",
    "StepWorker",
    "TOPIC_SPECS",
    "TimerProcessor",
    "TimerStats",
    "TopicSpec",
    "Topics",
    "TransportError",
    "WorkerStats",
    "create_topics",
    "partition_for",
    "committed_lag",
    "PartitionLag",
    "InternalTopicError",
    "TopicDrift",
    "TopicDriftError",
    "check_topics",
    "topic_config",
    "partition_counts",
    "PartitionCountError",
    "check_partition_counts",
    "partition_mismatch",
    "default_keyspace",
    "JsonFormatter",
    "LOG_CONTEXT",
    "configure_logging",
    "configure_traces",
    "use_tracer_provider",
]
