"""Cassandra side of kflow: connections and (later) history materialization, queries, retention."""

from storage._errors import StorageError
from storage._session import CassandraConnection, CassandraTarget

__all__ = ["CassandraConnection", "CassandraTarget", "StorageError"]
