"""kflow's composition root: Kafka topics, processors, workers, client and the command line."""

from streams._config import Settings
from streams._devstack import DevStack, ServerStatus
from streams._jvm import DevStackError
from streams._topics import TOPIC_SPECS, TopicSpec, Topics, create_topics

__all__ = ["DevStack", "DevStackError", "ServerStatus", "Settings", "TOPIC_SPECS", "TopicSpec", "Topics",
           "create_topics"]
