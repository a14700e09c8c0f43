"""Loading the ``.avsc`` files: shared named types, record types, released schema sets, learned writer schemas.

A schema directory has this layout (the package's own is the contract, see ``docs/records.md``):

- ``types/*.avsc``: named types shared by several records (``Payload``, ``ErrorInfo``), each defined once and
  referenced by name, so the whole directory loads into one Avro parser as code generators do;
- ``*.avsc``: one record type per file, the file stem is the record name; these are what goes on the wire;
- ``released/<version>/``: the same layout, a frozen copy of the schemas each release wrote. Their records stay
  readable forever (Avro schema resolution to today's reader schema).

A record's fingerprint is the CRC-64-AVRO of the Parsing Canonical Form of its *expanded* schema (named types
inlined at first use), so moving a shared type into ``types/`` changes no fingerprint.

Writer schemas written by a newer release arrive at run time (the ``.schemas`` topic, see
``streams._schema_topic``): `learn_schema` adds one to a process-wide table, and `set_schema_source` installs the
function a codec calls once for a fingerprint it does not know.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, cast

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from fastavro.types import Schema

from ._errors import SchemaError

__all__ = [
    "LoadedSet",
    "Writer",
    "is_learned",
    "learn_schema",
    "learned",
    "load_set",
    "released_sets",
    "set_schema_source",
]

_PACKAGE: Final = __name__.rpartition(".")[0]  # the schema files ship inside this package


@dataclass(frozen=True, slots=True)
class Writer:
    """A schema some release wrote records with: the record type, the parsed expanded schema, its fingerprint."""

    name: str
    parsed: Schema
    fingerprint: bytes
    expanded: dict[str, object]


@dataclass(frozen=True, slots=True)
class LoadedSet:
    """One schema directory: its record types by name (in name order) and its shared types."""

    records: dict[str, Writer]
    sources: dict[str, dict[str, object]]  # record name -> the file's JSON (shared types by name, unexpanded)
    types: tuple[str, ...]


def load_set(directory: str | os.PathLike[str] | Traversable | None) -> LoadedSet:
    """Parse a schema directory (default: the package's own).

    Raises:
        SchemaError: no record schema, a file that is not JSON or not an Avro record, a record name that
            differs from its file stem, a shared type defined twice, or a reference to an undefined type.
    """
    root = _root(directory)
    named: dict[str, Schema] = {}
    shared: dict[str, dict[str, object]] = {}
    types: list[str] = []
    for file_name, source in _files(root / "types" if _is_dir(root / "types") else None):
        full = f"{source.get('namespace', '')}.{source['name']}".lstrip(".")
        if full in named:
            raise SchemaError(f"types/{file_name}: {full} is already defined")
        _parse(f"types/{file_name}", source, named)
        shared[full] = shared[str(source["name"])] = source
        types.append(str(source["name"]))
    records: dict[str, Writer] = {}
    sources: dict[str, dict[str, object]] = {}
    for file_name, source in _files(root):
        stem = file_name.removesuffix(".avsc")
        if str(source.get("name", "")).rsplit(".", 1)[-1] != stem:
            raise SchemaError(f"{file_name}: record name {source.get('name')!r} differs from the file stem")
        _refuse_redefinition(file_name, source, named)
        _parse(file_name, source, dict(named))  # every reference resolves
        expanded = cast(dict[str, object], _expand(source, shared, set()))
        records[stem] = writer(stem, expanded, file_name)
        sources[stem] = source
    if not records:
        raise SchemaError(f"no *.avsc schema files in {directory or 'the schemas package'}")
    return LoadedSet(records, sources, tuple(types))


def released_sets(directory: str | os.PathLike[str] | Traversable | None) -> dict[str, LoadedSet]:
    """The released schema sets kept under ``<directory>/released/<version>/``, by version."""
    released = _root(directory) / "released"
    if not _is_dir(released):
        return {}
    return {item.name: load_set(item) for item in sorted(released.iterdir(), key=_name) if item.is_dir()}


def writer(name: str, expanded: dict[str, object], origin: str) -> Writer:
    """A `Writer` for an expanded record schema (its fingerprint computed here)."""
    try:
        parsed = parse_schema(expanded)
        canonical = to_parsing_canonical_form(parsed)
        fingerprint = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
    except Exception as exc:  # fastavro raises several types for invalid schemas
        raise SchemaError(f"{origin}: invalid Avro schema: {exc}") from exc
    return Writer(name, parsed, fingerprint, expanded)


# --- writer schemas learned at run time ------------------------------------------------------------

_learned: dict[bytes, Writer] = {}
_source: Callable[[bytes], None] | None = None
_source_lock = threading.Lock()


def learn_schema(text: str | bytes) -> bytes:
    """Add a writer schema (the JSON of an expanded record schema) to this process's table; its fingerprint.

    Every `Codec` of the process can then read records written with it (resolved to its own reader schema).

    Raises:
        SchemaError: not JSON, or not a valid Avro record schema.
    """
    try:
        expanded = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"learned schema: invalid JSON: {exc}") from exc
    if not isinstance(expanded, dict) or expanded.get("type") != "record":
        raise SchemaError("learned schema: not an Avro record schema")
    learnt = writer(str(expanded.get("name", "")).rsplit(".", 1)[-1], expanded, "learned schema")
    _learned.setdefault(learnt.fingerprint, learnt)
    return learnt.fingerprint


def is_learned(fingerprint: bytes) -> bool:
    """Whether a writer schema with this fingerprint was learned (without asking the schema source)."""
    return fingerprint in _learned


def learned(fingerprint: bytes) -> Writer | None:
    """The writer schema learned for ``fingerprint``; asks the schema source once if none is known yet."""
    found = _learned.get(fingerprint)
    if found is None and _source is not None:
        with _source_lock:  # one lookup at a time; a concurrent one may have learned it meanwhile
            found = _learned.get(fingerprint)
            if found is None and _source is not None:
                _source(fingerprint)
                found = _learned.get(fingerprint)
    return found


def set_schema_source(source: Callable[[bytes], None] | None) -> Callable[[bytes], None] | None:
    """Install the function called with a fingerprint no codec knows (it may `learn_schema`); the previous one.

    The function runs synchronously inside ``Codec.decode``; it should be quick and remember what it could not
    find, as ``streams`` does by reading the ``.schemas`` topic at most once per short interval.
    """
    global _source
    previous, _source = _source, source
    return previous


# --- files -------------------------------------------------------------------------------------------


def _root(directory: str | os.PathLike[str] | Traversable | None) -> Traversable:
    if directory is None:
        return resources.files(_PACKAGE)
    if isinstance(directory, (str, os.PathLike)):
        return Path(directory)
    return directory


def _is_dir(item: Traversable) -> bool:
    try:
        return item.is_dir()
    except OSError:
        return False


def _files(root: Traversable | None) -> Iterator[tuple[str, dict[str, object]]]:
    """(file name, parsed JSON) of every ``*.avsc`` file directly in ``root``, in name order."""
    if root is None:
        return
    try:
        files = sorted((item for item in root.iterdir() if item.name.endswith(".avsc")), key=_name)
        texts = [(item.name, item.read_text(encoding="utf-8")) for item in files]
    except OSError as exc:
        raise SchemaError(f"cannot read schema files from {root}: {exc}") from exc
    for file_name, text in texts:
        try:
            source = json.loads(text)
        except ValueError as exc:
            raise SchemaError(f"{file_name}: invalid JSON: {exc}") from exc
        if not isinstance(source, dict) or source.get("type") != "record":
            raise SchemaError(f"{file_name}: not an Avro record schema")
        yield file_name, source


def _name(item: Traversable) -> str:
    return item.name


def _parse(file_name: str, source: dict[str, object], named: dict[str, Schema]) -> Schema:
    try:
        return parse_schema(source, cast(dict[str, dict[Any, Any]], named))
    except Exception as exc:  # fastavro raises several types for invalid schemas
        raise SchemaError(f"{file_name}: invalid Avro schema: {exc}") from exc


def _expand(schema: object, shared: dict[str, dict[str, object]], seen: set[str]) -> object:
    """``schema`` with each shared type inlined at its first use and referenced by name after, as the Avro
    specification requires of one schema (a name is defined once); the canonical form, and so the fingerprint,
    is then the same as if the file had defined the type inline."""
    if isinstance(schema, str):
        definition = shared.get(schema)
        if definition is None:
            return schema
        full = f"{definition.get('namespace', '')}.{definition['name']}".lstrip(".")
        if full in seen:
            return schema
        seen.add(full)
        return _expand(definition, shared, seen)
    if isinstance(schema, list):
        return [_expand(branch, shared, seen) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "fields" in out:
        fields = cast(list[dict[str, object]], out["fields"])
        out["fields"] = [dict(f, type=_expand(f["type"], shared, seen)) for f in fields]
    for key in ("items", "values"):
        if key in out:
            out[key] = _expand(out[key], shared, seen)
    return out


def _refuse_redefinition(file_name: str, schema: object, shared: dict[str, Schema]) -> None:
    """A record file must reference a shared type by name, never define it again inline (one definition each)."""
    if isinstance(schema, list):
        for branch in schema:
            _refuse_redefinition(file_name, branch, shared)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed") and f"kflow.{schema.get('name')}" in shared:
            raise SchemaError(f"{file_name}: defines {schema.get('name')} inline; reference the type in types/")
        for field in cast(list[dict[str, object]], schema.get("fields", [])):
            _refuse_redefinition(file_name, field.get("type"), shared)
        for key in ("items", "values"):
            if key in schema and isinstance(schema[key], (dict, list)):
                _refuse_redefinition(file_name, schema[key], shared)
        if isinstance(kind, (dict, list)):
            _refuse_redefinition(file_name, kind, shared)
