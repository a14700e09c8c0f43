"""kflow's composition root: Kafka topics, processors, workers, client and the command line."""

from streams._client import Client, RunInfo
from streams._config import Settings
from streams._delay import DelayProcessor, DelayStats
from streams._devstack import DevStack, ServerStatus
from streams._jvm import DevStackError
from streams._processor import Orchestrator, OrchestratorStats
from streams._topics import TOPIC_SPECS, TopicSpec, Topics, create_topics
from streams._worker import StepWorker, WorkerStats

__all__ = ["Client", "RunInfo", "StepWorker", "WorkerStats", "DelayProcessor", "DelayStats", "DevStack", "DevStackError", "Orchestrator", "OrchestratorStats",
           "ServerStatus", "Settings", "TOPIC_SPECS", "TopicSpec", "Topics", "create_topics"]
