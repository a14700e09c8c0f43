"""kflow's composition root: Kafka topics, processors, workers, client and the command line."""

from streams._client import Client, HookDeliveryError, RunInfo
from streams._config import Settings
from streams._delay import DelayProcessor, DelayStats
from streams._devstack import DevStack, ServerStatus
from streams._jvm import DevStackError
from streams._materializer import HistoryMaterializer, MaterializerStats
from streams._processor import Orchestrator, OrchestratorStats
from streams._topics import TOPIC_SPECS, TopicSpec, Topics, create_topics
from streams._worker import StepWorker, WorkerStats

__all__ = [
    "Client", "DelayProcessor", "DelayStats", "DevStack", "DevStackError", "HistoryMaterializer",
    "HookDeliveryError", "MaterializerStats", "Orchestrator", "OrchestratorStats", "RunInfo", "ServerStatus",
    "Settings", "StepWorker", "TOPIC_SPECS", "TopicSpec", "Topics", "WorkerStats", "create_topics",
]
