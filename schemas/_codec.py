"""Avro single-object encoding of kflow records (the wire format of every topic).

A message is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form + the Avro binary body, so a reader in any language can tell which schema wrote
it without a registry (Avro specification, "Single-object encoding").
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from io import BytesIO
from pathlib import Path
from typing import Final, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from fastavro.types import Schema

from ._errors import SchemaError
from ._validation import Check, InvalidDatum, compile_validator

__all__ = ["MAGIC", "Codec", "Decoded"]

MAGIC: Final = b"\xc3\x01"
"""The two marker bytes that start every single-object encoded message."""

_FINGERPRINT_SIZE: Final = 8
_HEADER_SIZE: Final = len(MAGIC) + _FINGERPRINT_SIZE
_PACKAGE: Final = __name__.rpartition(".")[0]  # the schema files ship inside this package


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: the record type's name (the schema file stem) and the record as a dict."""

    name: str
    record: dict[str, object]


@dataclass(frozen=True, slots=True)
class _Entry:
    """Everything the hot path needs about one record type, computed once."""

    name: str
    source: dict[str, object]
    parsed: Schema
    fingerprint: bytes
    header: bytes
    check: Check


class Codec:
    """Encodes and decodes kflow records in Avro single-object encoding.

    Every ``*.avsc`` file of the directory is parsed once, when the codec is built; encoding and
    decoding then only look schemas up by name or by fingerprint. A codec is immutable after
    construction and safe to share between tasks and threads.

    Args:
        directory: where the ``*.avsc`` files are; default: the ``schemas`` package itself.

    Raises:
        SchemaError: no schema file, a file that is not valid JSON or not a valid Avro record schema,
            a record name that differs from its file stem, or two schemas with one fingerprint.
    """

    __slots__ = ("_by_fingerprint", "_by_name", "_names", "_origin")

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        by_name: dict[str, _Entry] = {}
        by_fingerprint: dict[bytes, _Entry] = {}
        for file_name, text in _schema_files(directory):
            entry = _load(file_name, text)
            clash = by_fingerprint.get(entry.fingerprint)
            if clash is not None:
                raise SchemaError(f"{file_name}: fingerprint {entry.fingerprint.hex()} already used by {clash.name}")
            by_name[entry.name] = entry
            by_fingerprint[entry.fingerprint] = entry
        if not by_name:
            raise SchemaError(f"no *.avsc schema files in {directory or 'the schemas package'}")
        self._by_name: Final = by_name
        self._by_fingerprint: Final = by_fingerprint
        self._names: Final = tuple(sorted(by_name))
        self._origin: Final = str(directory) if directory is not None else "schemas"

    def __repr__(self) -> str:
        return f"Codec({len(self._by_name)} record types from {self._origin!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """The record type names this codec knows, sorted."""
        return self._names

    def fingerprint(self, name: str) -> bytes:
        """The 8-byte little-endian CRC-64-AVRO fingerprint of record type `name`'s schema.

        Raises:
            SchemaError: unknown record type.
        """
        return self._entry(name).fingerprint

    def schema(self, name: str) -> dict[str, object]:
        """A copy of record type `name`'s schema as parsed from its ``.avsc`` file (JSON object).

        Raises:
            SchemaError: unknown record type.
        """
        return copy.deepcopy(self._entry(name).source)

    def encode(self, name: str, record: Mapping[str, object]) -> bytes:
        """Encode `record` as record type `name` in Avro single-object encoding.

        Fields that have a default (the nullable ones) may be left out; unknown fields are refused.

        Raises:
            SchemaError: unknown record type, or the record does not match the schema (the message
                names the record type, the field path and the reason).
        """
        entry = self._by_name.get(name)
        if entry is None:
            raise SchemaError(f"unknown record type {name!r}")
        try:
            ready = entry.check(record)
        except InvalidDatum as exc:
            where = f"field {exc.path}: " if exc.path else ""
            raise SchemaError(f"invalid datum for record {name}: {where}{exc.reason}") from None
        except Exception as exc:  # a Mapping whose methods raise
            raise SchemaError(f"invalid datum for record {name}: {type(exc).__name__}: {exc}") from exc
        out = BytesIO()
        out.write(entry.header)
        try:
            schemaless_writer(out, entry.parsed, ready)
        except Exception as exc:  # e.g. a string with lone surrogates, not encodable as UTF-8
            raise SchemaError(f"invalid datum for record {name}: {type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> Decoded:
        """Decode one single-object encoded message, resolving its schema from the fingerprint.

        The message must be exactly one record: bytes after a complete body are an error.

        Raises:
            SchemaError: not bytes, bad magic, truncated header, unknown fingerprint, truncated or
                corrupt body, or trailing bytes.
        """
        if not isinstance(data, bytes):
            if not isinstance(data, (bytearray, memoryview)):
                raise SchemaError(f"cannot decode {type(data).__name__}: expected bytes")
            data = bytes(data)
        size = len(data)
        if data[:2] != MAGIC:
            if size < 2 and MAGIC.startswith(data):
                raise SchemaError(f"truncated header: {size} byte(s), expected at least {_HEADER_SIZE}")
            raise SchemaError(f"bad magic {data[:2].hex()}: not Avro single-object encoding (expected {MAGIC.hex()})")
        if size < _HEADER_SIZE:
            raise SchemaError(f"truncated header: {size} bytes, expected at least {_HEADER_SIZE}")
        entry = self._by_fingerprint.get(data[2:_HEADER_SIZE])
        if entry is None:
            raise SchemaError(f"unknown fingerprint {data[2:_HEADER_SIZE].hex()}: no known schema has it")
        stream = BytesIO(data)
        stream.seek(_HEADER_SIZE)
        try:
            record = schemaless_reader(stream, entry.parsed, None)
        except Exception as exc:
            # fastavro signals running out of bytes as EOFError or, inside a varint, IndexError.
            problem = "truncated" if isinstance(exc, EOFError) or stream.tell() >= size else "corrupt"
            raise SchemaError(f"{problem} body of record {entry.name}: {type(exc).__name__}: {exc}") from exc
        end = stream.tell()
        if end != size:
            raise SchemaError(f"trailing bytes: {size - end} byte(s) after a complete {entry.name} record")
        return Decoded(entry.name, cast(dict[str, object], record))

    def _entry(self, name: str) -> _Entry:
        entry = self._by_name.get(name)
        if entry is None:
            raise SchemaError(f"unknown record type {name!r}")
        return entry


def _schema_files(directory: str | os.PathLike[str] | None) -> Iterator[tuple[str, str]]:
    """Yield (file name, text) of every ``*.avsc`` file, in name order."""
    root: Traversable = resources.files(_PACKAGE) if directory is None else Path(directory)
    try:
        files = sorted((item for item in root.iterdir() if item.name.endswith(".avsc")), key=_name)
        for item in files:
            yield item.name, item.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read schema files from {root}: {exc}") from exc


def _name(item: Traversable) -> str:
    return item.name


def _load(file_name: str, text: str) -> _Entry:
    """Parse one ``.avsc`` file and precompute its fingerprint, header and validator."""
    stem = file_name.removesuffix(".avsc")
    try:
        source = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"{file_name}: invalid JSON: {exc}") from exc
    if not isinstance(source, dict) or source.get("type") != "record":
        raise SchemaError(f"{file_name}: not an Avro record schema")
    if str(source.get("name", "")).rsplit(".", 1)[-1] != stem:
        raise SchemaError(f"{file_name}: record name {source.get('name')!r} differs from the file stem")
    try:
        parsed = parse_schema(source)
        canonical = to_parsing_canonical_form(parsed)
        fingerprint = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
    except Exception as exc:  # fastavro raises several types for invalid schemas
        raise SchemaError(f"{file_name}: invalid Avro schema: {exc}") from exc
    return _Entry(
        name=stem,
        source=source,
        parsed=parsed,
        fingerprint=fingerprint,
        header=MAGIC + fingerprint,
        check=compile_validator(source),
    )
