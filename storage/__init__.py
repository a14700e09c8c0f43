"""Cassandra side of kflow: connections, schema migrations, history materialization, run queries and
retention (``kflow compact``)."""

from storage._errors import StorageError
from storage._history import HistoryWriter
from storage._migrations import migrate
from storage._queries import FinishedRun, HistorySize, RunPage, RunRow, RunStore
from storage._session import CassandraConnection, CassandraTarget

__all__ = [
    "CassandraConnection",
    "CassandraTarget",
    "FinishedRun",
    "HistorySize",
    "HistoryWriter",
    "RunPage",
    "RunRow",
    "RunStore",
    "StorageError",
    "migrate",
]
