"""Avro single-object encoding of kflow records (the wire format of every topic).

A message is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form + the Avro binary body, so a reader in any language can tell which schema wrote
it without a registry (Avro specification, "Single-object encoding").
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Final, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.types import Schema

from ._errors import SchemaError
from ._schema_set import Writer, is_learned, learned, load_set, released_sets
from ._validation import Check, InvalidDatum, compile_validator

__all__ = ["MAGIC", "Codec", "Decoded"]

MAGIC: Final = b"\xc3\x01"
"""The two marker bytes that start every single-object encoded message."""

_FINGERPRINT_SIZE: Final = 8
_HEADER_SIZE: Final = len(MAGIC) + _FINGERPRINT_SIZE


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: the record type's name (the schema file stem) and the record as a dict."""

    name: str
    record: dict[str, object]


@dataclass(frozen=True, slots=True)
class _Entry:
    """Everything the hot path needs about one record type of this release, computed once."""

    name: str
    source: dict[str, object]
    parsed: Schema
    fingerprint: bytes
    header: bytes
    check: Check


class Codec:
    """Encodes and decodes kflow records in Avro single-object encoding, reading every schema kflow ever wrote.

    Records are written with this release's schemas. A record is read with the schema that wrote it, found by the
    fingerprint in its header: this release's, a released one (``released/<version>/``), or one learned at run
    time (`learn_schema`, the ``.schemas`` topic), and resolved to this release's schema of the same record type
    by Avro's rules (a field the writer lacked takes its default, a field the reader lacks is skipped). A
    codec is safe to share between tasks and threads.

    Args:
        directory: where the ``*.avsc`` files are (layout in ``schemas._schema_set``); default: the ``schemas``
            package itself.

    Raises:
        SchemaError: no schema file, a file that is not valid JSON or not a valid Avro record schema,
            a record name that differs from its file stem, or two schemas with one fingerprint.
    """

    __slots__ = ("_by_fingerprint", "_by_name", "_names", "_origin", "_writers")

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        by_name, by_fingerprint, writers = _tables(None if directory is None else str(directory))
        self._by_name: Final = by_name
        self._by_fingerprint: Final = by_fingerprint
        self._writers: Final = writers
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
        """A copy of record type `name`'s schema, expanded (shared types inlined at first use), as a JSON object.

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
        name, writer, reader = self._schemas(data)
        stream = BytesIO(data)
        stream.seek(_HEADER_SIZE)
        try:
            record = schemaless_reader(stream, writer, reader)
        except Exception as exc:
            # fastavro signals running out of bytes as EOFError or, inside a varint, IndexError.
            problem = "truncated" if isinstance(exc, EOFError) or stream.tell() >= size else "corrupt"
            raise SchemaError(f"{problem} body of record {name}: {type(exc).__name__}: {exc}") from exc
        end = stream.tell()
        if end != size:
            raise SchemaError(f"trailing bytes: {size - end} byte(s) after a complete {name} record")
        return Decoded(name, cast(dict[str, object], record))

    def name_of(self, data: bytes) -> str:
        """The record type of a single-object encoded message, read from its header alone (the body is not decoded).

        Raises:
            SchemaError: bad magic, truncated header or unknown fingerprint.
        """
        return self._schemas(data if isinstance(data, bytes) else bytes(data))[0]

    def _schemas(self, data: bytes) -> tuple[str, Schema, Schema | None]:
        """The record name, writer schema and (for an older writer) reader schema of ``data``, from its header."""
        size = len(data)
        if data[:2] != MAGIC:
            if size < 2 and MAGIC.startswith(data):
                raise SchemaError(f"truncated header: {size} byte(s), expected at least {_HEADER_SIZE}")
            raise SchemaError(f"bad magic {data[:2].hex()}: not Avro single-object encoding (expected {MAGIC.hex()})")
        if size < _HEADER_SIZE:
            raise SchemaError(f"truncated header: {size} bytes, expected at least {_HEADER_SIZE}")
        fingerprint = data[2:_HEADER_SIZE]
        entry = self._by_fingerprint.get(fingerprint)
        writer: Schema
        if entry is not None:  # written by this release: no resolution
            name, writer, reader = entry.name, entry.parsed, None
        else:
            old = self._writers.get(fingerprint) or learned(fingerprint)
            if old is None:
                raise SchemaError(f"unknown fingerprint {fingerprint.hex()}: no known schema has it")
            current = self._by_name.get(old.name)
            if current is None:
                raise SchemaError(
                    f"record type {old.name} (fingerprint {fingerprint.hex()}) is unknown to this release"
                )
            name, writer, reader = old.name, old.parsed, current.parsed
        return name, writer, reader

    def knows(self, fingerprint: bytes) -> bool:
        """Whether records with this writer-schema fingerprint can be read without asking the schema source."""
        return fingerprint in self._by_fingerprint or fingerprint in self._writers or is_learned(fingerprint)

    def writer_schemas(self) -> dict[bytes, str]:
        """Fingerprint -> JSON text of the expanded schema, for every record type this codec writes (what a
        process publishes on the ``.schemas`` topic so that older readers can resolve its records)."""
        return {e.fingerprint: json.dumps(e.source, separators=(",", ":")) for e in self._by_name.values()}

    def _entry(self, name: str) -> _Entry:
        entry = self._by_name.get(name)
        if entry is None:
            raise SchemaError(f"unknown record type {name!r}")
        return entry


@functools.cache
def _tables(directory: str | None) -> tuple[dict[str, _Entry], dict[bytes, _Entry], dict[bytes, Writer]]:
    """This release's record types by name and by fingerprint, and every released writer schema by fingerprint
    (loaded once per directory: the files do not change while a process runs)."""
    loaded = load_set(directory)
    by_name: dict[str, _Entry] = {}
    by_fingerprint: dict[bytes, _Entry] = {}
    for name, current in loaded.records.items():
        clash = by_fingerprint.get(current.fingerprint)
        if clash is not None:
            raise SchemaError(f"{name}.avsc: fingerprint {current.fingerprint.hex()} already used by {clash.name}")
        entry = _Entry(
            name=name,
            source=current.expanded,
            parsed=current.parsed,
            fingerprint=current.fingerprint,
            header=MAGIC + current.fingerprint,
            check=compile_validator(current.expanded),
        )
        by_name[name] = by_fingerprint[current.fingerprint] = entry
    writers: dict[bytes, Writer] = {}
    for release in released_sets(directory).values():
        for old in release.records.values():
            if old.fingerprint not in by_fingerprint:
                writers.setdefault(old.fingerprint, old)
    return by_name, by_fingerprint, writers
