"""Cassandra side of kflow: connections, schema migrations, history materialization and run queries."""

from storage._errors import StorageError
from storage._history import HistoryWriter
from storage._migrations import migrate
from storage._queries import RunPage, RunRow, RunStore
from storage._session import CassandraConnection, CassandraTarget

__all__ = ["CassandraConnection", "CassandraTarget", "HistoryWriter", "RunPage", "RunRow", "RunStore",
           "StorageError", "migrate"]
