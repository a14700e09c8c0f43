"""Migration files: statement splitting, naming, ordering — no server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storage import MIGRATIONS_DIR, StorageError, load_migrations, parse_statements


def test_statements_split_on_semicolons_at_line_ends_and_skip_comments() -> None:
    text = """
    -- a comment; with a semicolon
    CREATE TABLE IF NOT EXISTS a (
        k text PRIMARY KEY,   -- not a terminator: the line does not end with ';'
        v text
    );
    // another comment style
    INSERT INTO a (k, v) VALUES ('x;y', 'z');

    ;
    DROP TABLE IF EXISTS b;
    """
    statements = parse_statements(text)
    assert len(statements) == 3
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS a (") and statements[0].endswith(")")
    assert "-- not a terminator" in statements[0]  # a trailing comment stays inside its statement
    assert statements[1] == "INSERT INTO a (k, v) VALUES ('x;y', 'z')"
    assert statements[2] == "DROP TABLE IF EXISTS b"


def test_an_unterminated_statement_is_refused() -> None:
    with pytest.raises(StorageError, match="not terminated"):
        parse_statements("CREATE TABLE a (k text PRIMARY KEY);\nDROP TABLE a", "002_x.cql")


def test_files_are_ordered_by_numeric_version(tmp_path: Path) -> None:
    (tmp_path / "10_later.cql").write_text("CREATE TABLE IF NOT EXISTS t10 (k int PRIMARY KEY);\n")
    (tmp_path / "002_second.cql").write_text("CREATE TABLE IF NOT EXISTS t2 (k int PRIMARY KEY);\n")
    (tmp_path / "001_first.cql").write_text("-- only a comment and one statement\nSELECT now() FROM system.local;\n")
    (tmp_path / "README.md").write_text("not a migration")
    migrations = load_migrations(tmp_path)
    assert [(m.version, m.name) for m in migrations] == [
        (1, "001_first.cql"),
        (2, "002_second.cql"),
        (10, "10_later.cql"),
    ]
    assert migrations[0].statements == ("SELECT now() FROM system.local",)
    assert len({m.checksum for m in migrations}) == 3


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.cql").write_text("SELECT now() FROM system.local;\n")
    (tmp_path / "1_b.cql").write_text("SELECT now() FROM system.local;\n")
    with pytest.raises(StorageError, match="share version 1"):
        load_migrations(tmp_path)


def test_malformed_file_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "init.cql").write_text("SELECT now() FROM system.local;\n")
    with pytest.raises(StorageError, match=r"NNN_name\.cql"):
        load_migrations(tmp_path)


def test_the_package_migrations_create_the_documented_tables_without_naming_a_keyspace() -> None:
    migrations = load_migrations()
    assert migrations and migrations[0].version == 1
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    created = [re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", s) for m in migrations for s in m.statements]
    tables = {match.group(1) for match in created if match is not None}
    assert {"schema_migrations", "events", "runs", "runs_by_status", "runs_by_workflow"} <= tables
    assert "schema_migrations" in migrations[0].statements[0]  # the runner records into it right after 001
    for migration in migrations:
        for statement in migration.statements:
            assert "IF NOT EXISTS" in statement or "IF EXISTS" in statement, statement  # re-runnable
            assert not re.search(r"\b\w+\.(events|runs\w*|schema_migrations)\b", statement), statement
    assert (MIGRATIONS_DIR / migrations[0].name).is_file()
