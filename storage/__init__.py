"""Cassandra side of kflow: connections, schema migrations, history materialization, run queries and
retention (``kflow compact``)."""

from storage._cql import (
    REQUEST_BYTES,
    REQUEST_PARTITIONS,
    Write,
    day_bucket,
    group_writes,
    json_text,
    pack_groups,
    to_ms,
    weight,
)
from storage._errors import StorageError
from storage._history import HistoryWriter
from storage._listing import MAX_DAYS_PER_PAGE, RunListing
from storage._migrations import MIGRATIONS_DIR, load_migrations, migrate, parse_statements
from storage._pages import MIN_DAY, PageCursor, day_range, decode_page, encode_page
from storage._prefix import (
    ID_PREFIX_LENGTH,
    SCAN_BUDGET,
    PrefixCursor,
    PrefixListing,
    decode_prefix_page,
    encode_prefix_page,
    prefix_end,
)
from storage._queries import FinishedRun, HistorySize, RunPage, RunRow, RunStore
from storage._session import CONSISTENCY_LEVELS, CassandraConnection, CassandraTarget, parse_replication

__all__ = [
    "MAX_DAYS_PER_PAGE",
    "RunListing",
    "MIN_DAY",
    "PrefixCursor",
    "decode_prefix_page",
    "encode_prefix_page",
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
    "pack_groups",
    "weight",
    "REQUEST_BYTES",
    "REQUEST_PARTITIONS",
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
