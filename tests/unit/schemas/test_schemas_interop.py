"""Interop with the Apache Avro reference library, both ways, for every schema.

The header is checked against avro's own CRC-64-AVRO fingerprint (avro.schema.Schema.fingerprint,
little-endian as the Avro specification's single-object encoding requires) and bodies are read and
written by avro.io.DatumReader / DatumWriter, so kflow's bytes are what any Avro implementation expects.
"""

from __future__ import annotations

import io
import json

import avro.io
import avro.name
import avro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_samples import NAMES, SCHEMA_DIR, sample, strategy

from schemas import Codec, Decoded

CODEC = Codec()


def _load_directory() -> dict[str, avro.schema.Schema]:
    """The whole directory in ONE Apache avro parser, as code generators load it: shared types first, then
    every record referencing them by name (avro refuses a name defined twice)."""
    names = avro.name.Names()
    for path in sorted((SCHEMA_DIR / "types").glob("*.avsc")):
        avro.schema.make_avsc_object(json.loads(path.read_text("utf-8")), names)
    return {
        name: avro.schema.make_avsc_object(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text("utf-8")), names)
        for name in NAMES
    }


AVRO_SCHEMAS = _load_directory()


def _avro_fingerprint(name: str) -> bytes:
    return AVRO_SCHEMAS[name].fingerprint("CRC-64-AVRO")


def _read_with_avro(name: str, data: bytes) -> object:
    """Read kflow bytes with Apache avro: header checked with avro's fingerprint, body by DatumReader."""
    assert data[:2] == b"\xc3\x01", "single-object marker"
    assert data[2:10] == _avro_fingerprint(name), "fingerprint as computed by Apache avro"
    body = io.BytesIO(data[10:])
    record = avro.io.DatumReader(AVRO_SCHEMAS[name]).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(data) - 10, "avro consumed the whole body"
    return record


def _write_with_avro(name: str, record: object) -> bytes:
    """Single-object encoding built by Apache avro: its fingerprint, its DatumWriter body."""
    out = io.BytesIO()
    out.write(b"\xc3\x01" + _avro_fingerprint(name))
    avro.io.DatumWriter(AVRO_SCHEMAS[name]).write(record, avro.io.BinaryEncoder(out))
    return out.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_equals_apache_avro_fingerprint(name: str) -> None:
    assert CODEC.fingerprint(name) == _avro_fingerprint(name)


def test_fingerprint_is_little_endian_crc64_avro_of_the_canonical_form() -> None:
    # The Avro spec's reference fingerprint64 algorithm, computed independently of both libraries.
    empty = 0xC15D213AA4D7A795
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ (empty & -(value & 1))
        table.append(value)
    canonical = AVRO_SCHEMAS["CancelTimer"].canonical_form.encode("utf-8")
    result = empty
    for byte in canonical:
        result = (result >> 8) ^ table[(result ^ byte) & 0xFF]
    assert CODEC.fingerprint("CancelTimer") == result.to_bytes(8, "little")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fill", [False, True], ids=["nulls", "filled"])
def test_kflow_bytes_are_read_by_apache_avro(name: str, fill: bool) -> None:
    record = sample(name, fill)
    assert _read_with_avro(name, CODEC.encode(name, record)) == record


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fill", [False, True], ids=["nulls", "filled"])
def test_apache_avro_bytes_are_decoded_by_kflow(name: str, fill: bool) -> None:
    record = sample(name, fill)
    data = _write_with_avro(name, record)
    assert CODEC.decode(data) == Decoded(name, record)
    assert CODEC.encode(name, record) == data  # byte for byte the same encoding


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitrary_records_interoperate_both_ways(name: str, data: st.DataObject) -> None:
    record = data.draw(strategy(name))
    ours = CODEC.encode(name, record)
    assert _read_with_avro(name, ours) == record
    theirs = _write_with_avro(name, record)
    assert theirs == ours
    assert CODEC.decode(theirs) == Decoded(name, record)
