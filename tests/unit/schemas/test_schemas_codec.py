"""Codec: single-object encoding round trips, header layout, API and error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_samples import NAMES, SCHEMA_DIR, SCHEMAS, sample, strategy

import schemas
from schemas import Codec, Decoded, SchemaError, encode_payload

CODEC = Codec()
RUN_ID = "0123456789abcdef0123456789abcdef"


def test_public_api_is_pinned() -> None:
    assert schemas.__all__ == [
        "Codec",
        "Decoded",
        "PayloadError",
        "RecordCodec",
        "RecordSigner",
        "SchemaError",
        "UnresolvedValue",
        "decode_payload",
        "encode_payload",
        "learn_schema",
        "set_schema_source",
    ]
    assert issubclass(schemas.PayloadError, SchemaError) and issubclass(SchemaError, Exception)
    assert SchemaError.retryable is False


def test_codec_knows_every_schema_file() -> None:
    assert CODEC.names == tuple(NAMES)
    assert f"{len(NAMES)} record types" in repr(CODEC) and len(NAMES) >= 33


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fill", [False, True], ids=["nulls", "filled"])
def test_sample_record_round_trips(name: str, fill: bool) -> None:
    record = sample(name, fill)
    data = CODEC.encode(name, record)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == CODEC.fingerprint(name)
    assert CODEC.decode(data) == Decoded(name, record)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitrary_valid_records_round_trip(name: str, data: st.DataObject) -> None:
    record = data.draw(strategy(name))
    assert CODEC.decode(CODEC.encode(name, record)) == Decoded(name, record)


def test_step_result_from_a_worker_round_trips() -> None:
    record = {
        "run_id": RUN_ID,
        "position": 3,
        "attempt": 1,
        "ok": True,
        "result": encode_payload({"receipt": "r-1", "amount": 9.5}),
        "error": None,
        "worker": "host-1:4242",
        "started_at": 1_700_000_000_000,
        "finished_at": 1_700_000_000_005,
        "mac": None,  # written by a worker without a secret
    }
    decoded = CODEC.decode(CODEC.encode("StepResult", record))
    assert decoded.name == "StepResult"
    assert decoded.record == record


def test_step_failed_with_error_info_round_trips() -> None:
    record = {
        "run_id": RUN_ID,
        "seq": 12,
        "timestamp": 1_700_000_000_000,
        "position": 4,
        "attempt": 2,
        "error": {
            "type": "builtins.ValueError",
            "message": "bad amount",
            "traceback": 'Traceback (most recent call last):\n  File "x.py"\nValueError: bad amount\n',
            "retryable": True,
            "retry_after_ms": 2_000,
        },
        "retry_at": 1_700_000_002_000,
    }
    assert CODEC.decode(CODEC.encode("StepFailed", record)).record == record


def test_start_workflow_with_optional_fields_left_out_decodes_them_as_null() -> None:
    record = {
        "run_id": RUN_ID,
        "workflow_name": "checkout",
        "args": encode_payload({"args": ["o-1", 9.5], "kwargs": {}}),
        "requested_at": 1_700_000_000_000,
        "depth": 0,
    }
    decoded = CODEC.decode(CODEC.encode("StartWorkflow", record)).record
    assert decoded == {
        **record,
        "idempotency_key": None,
        "parent_run_id": None,
        "parent_position": None,
        "continued_from": None,
        "chain_attempt": None,
    }


def test_dead_letter_keeps_arbitrary_key_and_value_bytes() -> None:
    record = {
        "topic": "kflow.inbox",
        "partition": 3,
        "offset": 2**40,
        "key": RUN_ID.encode(),
        "value": b"\x00\xffnot avro",
        "reason": "bad magic 0000",
        "error_type": "schemas.SchemaError",
        "failed_at": 1_700_000_000_000,
    }
    assert CODEC.decode(CODEC.encode("DeadLetter", record)).record == record


def test_encode_accepts_any_mapping_and_does_not_modify_the_input() -> None:
    payload = encode_payload([1, 2])
    record = {"run_id": RUN_ID, "seq": 1, "timestamp": 5, "result": MappingProxyType(payload)}
    before = dict(record)
    data = CODEC.encode("WorkflowCompleted", MappingProxyType(record))
    assert record == before
    assert CODEC.decode(data).record == {**record, "result": payload}


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = CODEC.encode("CancelRequested", {"run_id": RUN_ID, "seq": 1, "timestamp": 2, "reason": None})
    assert CODEC.decode(bytearray(data)) == CODEC.decode(memoryview(data)) == CODEC.decode(data)


def test_fingerprints_are_distinct_and_eight_bytes() -> None:
    fingerprints = {CODEC.fingerprint(name) for name in NAMES}
    assert len(fingerprints) == len(NAMES)
    assert all(len(fingerprint) == 8 for fingerprint in fingerprints)


def test_schema_returns_a_copy_of_the_file_with_shared_types_inlined_at_first_use() -> None:
    schema = CODEC.schema("StepResult")
    assert schema == SCHEMAS["StepResult"]
    schema["fields"].clear()
    assert CODEC.schema("StepResult")["fields"]


def test_docs_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    schema = json.loads((SCHEMA_DIR / "CancelTimer.avsc").read_text("utf-8"))
    schema["doc"] = "reworded"
    schema["fields"][0]["doc"] = "reworded too"
    (tmp_path / "CancelTimer.avsc").write_text(json.dumps(schema))
    assert Codec(tmp_path).fingerprint("CancelTimer") == CODEC.fingerprint("CancelTimer")


def test_codec_from_a_directory_decodes_only_its_own_schemas(tmp_path: Path) -> None:
    shutil.copy(SCHEMA_DIR / "CancelTimer.avsc", tmp_path)
    small = Codec(str(tmp_path))
    assert small.names == ("CancelTimer",)
    timer = {"run_id": RUN_ID, "timer_id": "sleep:1:1", "requested_at": 1}
    assert small.decode(CODEC.encode("CancelTimer", timer)).record == timer
    other = CODEC.encode("CancelRequested", {"run_id": RUN_ID, "seq": 1, "timestamp": 2, "reason": "x"})
    # refused either way: an unknown fingerprint, or (when this process learned that schema) an unknown record type
    with pytest.raises(SchemaError, match=r"unknown fingerprint|is unknown to this release"):
        small.decode(other)


# --- failures name their reason ---------------------------------------------------------------------

VALID = CODEC.encode("StepResult", sample("StepResult", True))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated header"),
        (b"\xc3", "truncated header"),
        (b"\xc3\x01\x00", "truncated header"),
        (b"\x00\x01" + VALID[2:], "bad magic"),
        (b"Obj\x01", "bad magic"),
        (VALID[:2] + b"\x00" * 8 + VALID[10:], "unknown fingerprint 0000000000000000"),
        (VALID[:-1], "truncated body of record StepResult"),
        (VALID[:10], "truncated body of record StepResult"),
        (VALID + b"\x00", "trailing bytes: 1 byte"),
    ],
    ids=[
        "empty",
        "one byte",
        "short header",
        "bad magic",
        "avro file",
        "fingerprint",
        "body",
        "no body",
        "trailing",
    ],
)
def test_decode_failures_name_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        CODEC.decode(data)


def test_decode_of_non_bytes_raises_schema_error() -> None:
    with pytest.raises(SchemaError, match="expected bytes"):
        CODEC.decode("c301")  # type: ignore[arg-type]


def test_unknown_record_type_raises_schema_error() -> None:
    with pytest.raises(SchemaError, match="unknown record type 'Nope'"):
        CODEC.encode("Nope", {})
    with pytest.raises(SchemaError, match="unknown record type"):
        CODEC.fingerprint("Nope")
    with pytest.raises(SchemaError, match="unknown record type"):
        CODEC.schema("Nope")


def _step_result(**changes: object) -> dict[str, object]:
    return {**sample("StepResult", False), **changes}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({k: v for k, v in _step_result().items() if k != "worker"}, "field worker: missing"),
        (_step_result(position="3"), "field position: expected int, got str"),
        (_step_result(position=1.5), "field position: expected int, got float"),
        (_step_result(position=True), "field position: expected int, got bool"),
        (_step_result(position=2**31), "field position: int out of 32-bit range"),
        (_step_result(started_at=2**63), "field started_at: long out of 64-bit range"),
        (_step_result(ok="yes"), "field ok: expected boolean, got str"),
        (_step_result(ok=1), "field ok: expected boolean, got int"),
        (_step_result(worker=b"host"), "field worker: expected string, got bytes"),
        (_step_result(result="json"), "field result: expected a mapping for record kflow.Payload"),
        (_step_result(result={"codec": "json", "data": "{}"}), "field result.data: expected bytes, got str"),
        (_step_result(result={"codec": "json"}), "field result.data: missing"),
        (_step_result(error={"type": "x", "message": "m", "retryable": "no"}), "field error.retryable"),
        (_step_result(reslt=None), "unknown field"),
        (_step_result(worker="\ud800"), "UnicodeEncodeError"),
    ],
    ids=lambda value: "" if isinstance(value, dict) else value.split(":")[0],
)
def test_encoding_an_invalid_record_names_record_and_field(record: dict[str, object], reason: str) -> None:
    with pytest.raises(SchemaError, match=f"invalid datum for record StepResult: .*{reason}"):
        CODEC.encode("StepResult", record)


@pytest.mark.parametrize("record", [None, [1, 2], "StepResult", 42])
def test_encoding_a_non_mapping_raises_schema_error(record: object) -> None:
    with pytest.raises(SchemaError, match="invalid datum for record StepResult: expected a mapping"):
        CODEC.encode("StepResult", record)  # type: ignore[arg-type]


def test_loading_an_empty_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"no \*\.avsc schema files"):
        Codec(tmp_path)


def test_loading_a_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read schema files"):
        Codec(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid JSON"),
        ('{"type": "enum", "name": "Broken", "symbols": ["A"]}', "not an Avro record schema"),
        ('{"type": "record", "name": "Other", "fields": []}', "differs from the file stem"),
        (
            '{"type": "record", "name": "Broken", "fields": [{"name": "a", "type": "nope"}]}',
            "invalid Avro schema",
        ),
        (
            '{"type": "record", "name": "Broken", "fields": '
            '[{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}',
            "logicalType",
        ),
    ],
    ids=["json", "enum", "name", "type", "logical"],
)
def test_loading_a_bad_schema_file_fails_naming_it(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "Broken.avsc").write_text(text)
    with pytest.raises(SchemaError, match=f"Broken.avsc: .*{reason}|{reason}"):
        Codec(tmp_path)


def test_importing_the_package_builds_no_codec() -> None:
    assert not any(isinstance(value, Codec) for value in vars(schemas).values())
