"""Cassandra side of kflow: connections, schema migrations, history materialization, run queries and
retention (``kflow compact``)."""

from storage._cql import Write, day_bucket, group_writes, json_text, to_ms
from storage._errors import StorageError
from storage._history import HistoryWriter
from storage._migrations import MIGRATIONS_DIR, load_migrations, migrate, parse_statements
from storage._pages import PageCursor, day_range, decode_page, encode_page
from storage._prefix import ID_PREFIX_LENGTH, SCAN_BUDGET, PrefixListing, prefix_end
from storage._queries import FinishedRun, HistorySize, RunPage, RunRow, RunStore
from storage._session import CONSISTENCY_LEVELS, CassandraConnection, CassandraTarget, parse_replication

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
    "parse_replication",
    "CONSISTENCY_LEVELS",
    "ID_PREFIX_LENGTH",
    # the parts, for tests and tools
    "MIGRATIONS_DIR",
    "load_migrations",
    "parse_statements",
    "Write",
    "group_writes",
    "day_bucket",
    "json_text",
    "to_ms",
    "PageCursor",
    "day_range",
    "decode_page",
    "encode_page",
    "prefix_end",
    "PrefixListing",
    "SCAN_BUDGET",
]
