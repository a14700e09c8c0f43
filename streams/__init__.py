"""kflow's composition root: Kafka topics, processors, workers, client and the command line."""

from streams._config import Settings
from streams._delay import DelayProcessor, DelayStats
from streams._devstack import DevStack, ServerStatus
from streams._jvm import DevStackError
from streams._processor import Orchestrator, OrchestratorStats
from streams._topics import TOPIC_SPECS, TopicSpec, Topics, create_topics

__all__ = ["DelayProcessor", "DelayStats", "DevStack", "DevStackError", "Orchestrator", "OrchestratorStats",
           "ServerStatus", "Settings", "TOPIC_SPECS", "TopicSpec", "Topics", "create_topics"]
