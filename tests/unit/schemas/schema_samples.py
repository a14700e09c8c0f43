"""Test helpers: read the schema files and docs/records.md, and build valid records from a schema.

Valid records come from the schema itself (a fixed sample with every optional field null or every
optional field set, and a hypothesis strategy), so a new record type is covered without new test code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "schemas"
RECORDS_MD = ROOT / "docs" / "records.md"

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
HISTORY_PREFIX = [("run_id", "string"), ("seq", "long"), ("timestamp", "long")]


def shared_types() -> dict[str, dict[str, object]]:
    """Shared named type (``Payload``, ``ErrorInfo``) -> its definition, from ``schemas/types/*.avsc``."""
    return {path.stem: json.loads(path.read_text("utf-8")) for path in sorted((SCHEMA_DIR / "types").glob("*.avsc"))}


def _inline_first_use(schema: object, shared: Mapping[str, dict[str, object]], seen: set[str]) -> object:
    if isinstance(schema, str):
        name = schema.rpartition(".")[2]
        if name not in shared or name in seen:
            return schema
        seen.add(name)
        return _inline_first_use(shared[name], shared, seen)
    if isinstance(schema, list):
        return [_inline_first_use(branch, shared, seen) for branch in schema]
    if isinstance(schema, dict):
        out = dict(schema)
        if "fields" in out:
            out["fields"] = [dict(f, type=_inline_first_use(f["type"], shared, seen)) for f in out["fields"]]
        for key in ("items", "values"):
            if key in out:
                out[key] = _inline_first_use(out[key], shared, seen)
        return out
    return schema


def schema_files() -> dict[str, dict[str, object]]:
    """Record name (file stem) -> its schema with the shared types inlined at first use (the Avro form of one
    self-contained schema), for every ``schemas/*.avsc``."""
    shared = shared_types()
    return {
        path.stem: _inline_first_use(json.loads(path.read_text("utf-8")), shared, set())
        for path in sorted(SCHEMA_DIR.glob("*.avsc"))
    }


SCHEMAS = schema_files()
NAMES = sorted(SCHEMAS)


def walk_named(schema: object) -> Iterator[dict[str, object]]:
    """Every inline named-type definition (records included) in a schema, outermost first."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_named(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            yield schema
        for field in schema.get("fields", ()):
            yield from walk_named(field["type"])
        for key in ("items", "values"):
            if key in schema:
                yield from walk_named(schema[key])


# --- docs/records.md --------------------------------------------------------------------------------


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and backticks."""
    parts, depth, in_code, current = [], 0, False, []
    for char in text:
        if char == "`":
            in_code = not in_code
        elif not in_code and char == "(":
            depth += 1
        elif not in_code and char == ")":
            depth -= 1
        if char == "," and depth == 0 and not in_code:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def documented_records() -> dict[str, list[tuple[str, str]]]:
    """Record name -> [(field name, type as written: "string", "?long", "Payload", ...)], in order.

    Reads the tables of docs/records.md: the first column is the backticked record name, the second
    the comma-separated fields; events in the History section get run_id, seq and timestamp first.
    """
    records: dict[str, list[tuple[str, str]]] = {}
    history = False
    for line in RECORDS_MD.read_text("utf-8").splitlines():
        if line.startswith("## "):
            history = line.startswith("## History")
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)]
        if len(cells) < 4 or not re.fullmatch(r"`\w+`", cells[1]):
            continue
        fields = [] if not history else list(HISTORY_PREFIX)
        for item in _split_top_level(cells[2].replace("\\|", "|")):
            name, _, kind = item.partition(":")
            kind = kind.strip().split(" ", 1)[0] if kind else ""
            fields.append((name.strip(), kind or "string"))  # bare `run_id` is the string run id
        records[cells[1].strip("`")] = fields
    return records


def type_label(avro_type: object) -> str:
    """An Avro field type in the notation of records.md: "string", "?int", "Payload"."""
    if isinstance(avro_type, list):
        assert len(avro_type) == 2 and avro_type[0] == "null", avro_type
        return "?" + type_label(avro_type[1])
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        return f"[{type_label(avro_type['items'])}]"
    if isinstance(avro_type, dict):
        return str(avro_type["name"])
    return str(avro_type).rsplit(".", 1)[-1]


# --- valid records from a schema --------------------------------------------------------------------


def _resolve(schema: object, named: dict[str, dict[str, object]]) -> object:
    if isinstance(schema, str) and schema in named:
        return named[schema]
    if isinstance(schema, str) and schema.rsplit(".", 1)[-1] in named:
        return named[schema.rsplit(".", 1)[-1]]
    return schema


def _build(schema: object, named: dict[str, dict[str, object]], fill: bool, field: str = "") -> object:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        return _build(schema[-1] if fill else schema[0], named, fill, field)
    if isinstance(schema, dict) and schema.get("type") == "array":
        return [_build(schema["items"], named, fill, field)] if fill else []
    if isinstance(schema, dict) and schema.get("type") == "array":
        return [_build(schema["items"], named, fill, field)] if fill else []
    if isinstance(schema, dict):
        named[str(schema["name"])] = schema
        return {item["name"]: _build(item["type"], named, fill, item["name"]) for item in schema["fields"]}
    return _leaf(str(schema), field)


def _leaf(kind: str, field: str) -> object:
    return {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 1_700_000_000_123,
        "string": f"{field}-value-é",
        "bytes": f"{field}-\x00\xff".encode("latin-1"),
    }[kind]


def sample(name: str, fill: bool) -> dict[str, object]:
    """A valid record of type `name`: every nullable field null (fill=False) or set (fill=True)."""
    record = _build(SCHEMAS[name], {}, fill)
    assert isinstance(record, dict)
    return record


def strategy(name: str) -> st.SearchStrategy[dict[str, object]]:
    """Hypothesis strategy for arbitrary valid records of type `name`."""
    return _strategy(SCHEMAS[name], {})


def _strategy(schema: object, named: dict[str, dict[str, object]]) -> st.SearchStrategy[object]:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        return st.one_of([_strategy(branch, named) for branch in schema])
    if isinstance(schema, dict) and schema.get("type") == "array":
        return st.lists(_strategy(schema["items"], named), max_size=4)
    if isinstance(schema, dict):
        named[str(schema["name"])] = schema
        return st.fixed_dictionaries({f["name"]: _strategy(f["type"], named) for f in schema["fields"]})
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(*INT_RANGE),
        "long": st.integers(*LONG_RANGE),
        "string": st.text(max_size=40),
        "bytes": st.binary(max_size=40),
    }[str(schema)]


def field_types(name: str) -> Mapping[str, object]:
    """Field name -> Avro type of the top-level fields of record type `name`."""
    return {field["name"]: field["type"] for field in SCHEMAS[name]["fields"]}
