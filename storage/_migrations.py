"""Schema migrations: numbered ``.cql`` files in ``storage/migrations``, applied in order, once each.

A file is named ``NNN_name.cql`` (``NNN`` = its version, any number of digits, unique). Its statements end
with a ``;`` at the end of a line; lines starting with ``--`` or ``//`` are comments. Statements name no
keyspace: the runner executes them in the target keyspace. Migration 1 creates ``schema_migrations``,
where the runner records each file after applying all of its statements.

Invariant: every statement is idempotent (``IF NOT EXISTS`` …): a migration interrupted between its
statements and its ``schema_migrations`` row is applied again from its first statement.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cassandra.query import SimpleStatement

from storage._cql import DRIVER_ERRORS
from storage._errors import StorageError
from storage._session import CassandraConnection

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
"""Where the package's migration files live."""

_FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.cql$")
_COMMENT_PREFIXES = ("--", "//")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name, statements (without the ``;``) and content checksum."""

    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def parse_statements(text: str, source: str = "<cql>") -> list[str]:
    """Split CQL ``text`` into statements: each ends with ``;`` at the end of a line.

    Raises:
        StorageError: text after the last ``;`` (a statement that is not terminated).
    """
    statements: list[str] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(_COMMENT_PREFIXES):
            continue
        current.append(raw.rstrip())
        if line.endswith(";"):
            statement = "\n".join(current).rstrip()[:-1].strip()
            current = []
            if statement:
                statements.append(statement)
    if current:
        raise StorageError(
            f"{source}: statement not terminated by ';' at the end of a line: {' '.join(current)[:80]!r}"
        )
    return statements


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations of ``directory`` (default: the package's), ordered by version.

    Raises:
        StorageError: a ``.cql`` file with a malformed name, two files with one version, a bad statement.
    """
    folder = directory or MIGRATIONS_DIR
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.cql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise StorageError(f"migration file {path.name!r} is not named NNN_name.cql")
        version = int(match.group(1))
        if version in found:
            raise StorageError(f"migrations {found[version].name!r} and {path.name!r} share version {version}")
        text = path.read_text(encoding="utf-8")
        found[version] = Migration(
            version=version,
            name=path.name,
            statements=tuple(parse_statements(text, path.name)),
            checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
    return [found[version] for version in sorted(found)]


def migrate(
    conn: CassandraConnection,
    keyspace: str,
    replication: dict[str, Any] | None = None,
    *,
    migrations: Sequence[Migration] | None = None,
) -> list[int]:
    """Create ``keyspace`` if needed and apply the migrations it has not recorded yet, in order.

    Args:
        conn: an open connection.
        keyspace: letters, digits and ``_``.
        replication: the keyspace's replication map when it is created (``kflow storage migrate
            --replication``); default: the connection target's (``KFLOW_CASSANDRA_REPLICATION``), else
            SimpleStrategy with one replica. An existing keyspace is left as it is.
        migrations: what to apply (default: ``load_migrations()``).

    Returns:
        The versions applied by this call (empty when the schema was up to date).

    Raises:
        StorageError: Cassandra unreachable or refusing a statement, an invalid keyspace name or replication,
            bad files.
    """
    todo = list(migrations) if migrations is not None else load_migrations()
    try:
        conn.ensure_keyspace(keyspace, replication)
        applied = _applied(conn, keyspace)
        done: list[int] = []
        for migration in todo:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    log.warning(
                        "migration %s changed after it was applied to %s (checksum differs)", migration.name, keyspace
                    )
                continue
            _apply(conn, keyspace, migration)
            done.append(migration.version)
        return done
    except DRIVER_ERRORS as exc:
        raise StorageError(f"migrating keyspace {keyspace!r} failed: {exc!r}") from exc


def _applied(conn: CassandraConnection, keyspace: str) -> dict[int, str]:
    """``version -> checksum`` of the recorded migrations (none before migration 1 created the table)."""
    exists = conn.session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, "schema_migrations"),
    ).one()
    if exists is None:
        return {}
    rows = conn.session.execute(f"SELECT version, checksum FROM {keyspace}.schema_migrations")
    return {int(row.version): str(row.checksum) for row in rows}


def _apply(conn: CassandraConnection, keyspace: str, migration: Migration) -> None:
    started = time.perf_counter()
    for statement in migration.statements:
        # The statement's keyspace (protocol v5) scopes the unqualified table names of the file.
        conn.session.execute(SimpleStatement(statement, keyspace=keyspace))
    conn.session.execute(
        f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) "
        "VALUES (%s, %s, %s, toTimestamp(now()))",
        (migration.version, migration.name, migration.checksum),
    )
    log.info(
        "applied migration %s to %s in %.2fs (%d statements)",
        migration.name,
        keyspace,
        time.perf_counter() - started,
        len(migration.statements),
    )
