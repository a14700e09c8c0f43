"""Whatever bytes or records arrive, the codec answers with a result or a SchemaError, nothing else.

A processor sends a record it cannot decode to the dead-letter topic by catching SchemaError; any
other exception would crash it and stall the partition.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_samples import NAMES, field_types, sample, strategy

from schemas import Codec, Decoded, SchemaError

CODEC = Codec()
HEADERS = [b"\xc3\x01" + CODEC.fingerprint(name) for name in NAMES]
BYTES_FUZZ = settings(max_examples=300, deadline=None)
ANY_RECORD = st.sampled_from(NAMES).flatmap(lambda name: st.tuples(st.just(name), strategy(name)))
"""(record type name, valid record of that type)"""
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_schema_error(data: bytes) -> Decoded | None:
    try:
        return CODEC.decode(data)
    except SchemaError:
        return None


@BYTES_FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_schema_error(data: bytes) -> None:
    _decode_or_schema_error(data)


@BYTES_FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=200))
def test_a_valid_header_with_any_body_decodes_or_raises_schema_error(header: bytes, body: bytes) -> None:
    decoded = _decode_or_schema_error(header + body)
    if decoded is not None:
        assert decoded.name in NAMES


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fill", [False, True], ids=["nulls", "filled"])
def test_every_truncation_of_a_valid_encoding_raises_schema_error(name: str, fill: bool) -> None:
    data = CODEC.encode(name, sample(name, fill))
    for cut in range(len(data)):
        with pytest.raises(SchemaError, match=r"truncated|bad magic"):
            CODEC.decode(data[:cut])


@FUZZ
@given(ANY_RECORD, st.data())
def test_truncations_of_arbitrary_records_raise_schema_error(
    case: tuple[str, dict[str, object]], data: st.DataObject
) -> None:
    name, record = case
    encoded = CODEC.encode(name, record)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(SchemaError):
        CODEC.decode(encoded[:cut])


@FUZZ
@given(ANY_RECORD, st.data())
def test_single_byte_corruptions_decode_or_raise_schema_error(
    case: tuple[str, dict[str, object]], data: st.DataObject
) -> None:
    name, record = case
    encoded = bytearray(CODEC.encode(name, record))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255).filter(lambda byte: byte != encoded[index]))
    decoded = _decode_or_schema_error(bytes(encoded))
    if index < 10:  # a damaged header never decodes: magic and fingerprint are checked
        assert decoded is None


@FUZZ
@given(ANY_RECORD, st.binary(min_size=1))
def test_trailing_bytes_raise_schema_error(case: tuple[str, dict[str, object]], extra: bytes) -> None:
    name, record = case
    with pytest.raises(SchemaError, match="trailing bytes"):
        CODEC.decode(CODEC.encode(name, record) + extra)


# --- invalid records --------------------------------------------------------------------------------

_WRONG: dict[str, st.SearchStrategy[object]] = {
    "string": st.one_of(st.integers(), st.binary(), st.none(), st.floats(), st.lists(st.text())),
    "bytes": st.one_of(st.text(), st.integers(), st.none(), st.lists(st.integers())),
    "int": st.one_of(
        st.integers(max_value=-(2**31) - 1),
        st.integers(min_value=2**31),
        st.booleans(),
        st.floats(),
        st.text(),
    ),
    "long": st.one_of(
        st.integers(max_value=-(2**63) - 1),
        st.integers(min_value=2**63),
        st.booleans(),
        st.floats(),
        st.text(),
    ),
    "boolean": st.one_of(st.integers(), st.text(), st.none(), st.floats()),
    "record": st.one_of(st.text(), st.integers(), st.binary(), st.lists(st.integers())),
}


def _wrong_value(avro_type: object) -> st.SearchStrategy[object]:
    if isinstance(avro_type, list):  # ["null", T]: anything wrong for T except null
        return _wrong_value(avro_type[1]).filter(lambda value: value is not None)
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":  # not a list, or a list of wrong items
        return st.one_of(st.text(), st.integers(), st.lists(_wrong_value(avro_type["items"]), min_size=1))
    if isinstance(avro_type, dict) or avro_type in ("Payload", "ErrorInfo"):
        return _WRONG["record"]
    return _WRONG[str(avro_type)]


@st.composite
def _record_with_a_wrong_field(draw: st.DrawFn) -> tuple[str, str, dict[str, object]]:
    name = draw(st.sampled_from(NAMES))
    record = draw(strategy(name))
    field, avro_type = draw(st.sampled_from(sorted(field_types(name).items())))
    record[field] = draw(_wrong_value(avro_type))
    return name, field, record


@FUZZ
@given(_record_with_a_wrong_field())
def test_a_field_of_the_wrong_type_raises_schema_error_naming_it(
    case: tuple[str, str, dict[str, object]],
) -> None:
    name, field, record = case
    with pytest.raises(SchemaError, match=f"invalid datum for record {name}: field {field}"):
        CODEC.encode(name, record)


@st.composite
def _record_missing_a_required_field(draw: st.DrawFn) -> tuple[str, str, dict[str, object]]:
    name = draw(st.sampled_from(NAMES))
    record = draw(strategy(name))
    required = sorted(field for field, kind in field_types(name).items() if not isinstance(kind, list))
    field = draw(st.sampled_from(required))
    del record[field]
    return name, field, record


@FUZZ
@given(_record_missing_a_required_field())
def test_a_missing_required_field_raises_schema_error_naming_it(
    case: tuple[str, str, dict[str, object]],
) -> None:
    name, field, record = case
    with pytest.raises(SchemaError, match=f"invalid datum for record {name}: field {field}: missing"):
        CODEC.encode(name, record)


@FUZZ
@given(ANY_RECORD, st.text(min_size=1))
def test_an_unknown_field_raises_schema_error(case: tuple[str, dict[str, object]], extra: str) -> None:
    name, record = case
    if extra in record:
        return
    record[extra] = None
    with pytest.raises(SchemaError, match="unknown field"):
        CODEC.encode(name, record)
