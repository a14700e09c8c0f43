"""The schema files follow docs/records.md and the schema conventions."""

from __future__ import annotations

import json

import avro.schema
import fastavro
import pytest
from schema_samples import NAMES, SCHEMA_DIR, SCHEMAS, documented_records, type_label, walk_named

PAYLOAD_FIELDS = [("codec", "string"), ("data", "bytes")]
ERROR_INFO_FIELDS = [
    ("type", "string"),
    ("message", "string"),
    ("traceback", "?string"),
    ("retryable", "boolean"),
    ("retry_after_ms", "?long"),
]


def test_the_schema_files_are_exactly_the_records_of_records_md() -> None:
    documented = documented_records()
    assert len(documented) >= 28  # the parser found the tables
    assert set(SCHEMAS) == set(documented)


@pytest.mark.parametrize("name", NAMES)
def test_fields_and_types_match_records_md_in_order(name: str) -> None:
    fields = [(field["name"], type_label(field["type"])) for field in SCHEMAS[name]["fields"]]
    assert fields == documented_records()[name]


@pytest.mark.parametrize("name", NAMES)
def test_file_parses_in_fastavro_and_apache_avro_on_its_own(name: str) -> None:
    text = (SCHEMA_DIR / f"{name}.avsc").read_text("utf-8")
    fastavro.parse_schema(json.loads(text))
    parsed = avro.schema.parse(text)
    assert parsed.fullname == f"kflow.{name}"


@pytest.mark.parametrize("name", NAMES)
def test_record_name_is_file_stem_in_namespace_kflow_with_docs(name: str) -> None:
    schema = SCHEMAS[name]
    assert schema["type"] == "record"
    assert schema["name"] == name
    assert schema["namespace"] == "kflow"
    for named in walk_named(schema):
        assert isinstance(named.get("doc"), str) and named["doc"].strip(), named["name"]
        for field in named["fields"]:
            where = f"{named['name']}.{field['name']}"
            assert isinstance(field.get("doc"), str) and field["doc"].strip(), where


@pytest.mark.parametrize("name", NAMES)
def test_nullable_fields_default_to_null_and_others_have_no_default(name: str) -> None:
    for named in walk_named(SCHEMAS[name]):
        for field in named["fields"]:
            if isinstance(field["type"], list):
                assert field["type"][0] == "null" and len(field["type"]) == 2, field["name"]
                assert "default" in field and field["default"] is None, field["name"]
            else:
                assert "default" not in field, field["name"]


@pytest.mark.parametrize("name", NAMES)
def test_timestamps_are_plain_longs(name: str) -> None:
    text = (SCHEMA_DIR / f"{name}.avsc").read_text("utf-8")
    assert "logicalType" not in text
    for field in SCHEMAS[name]["fields"]:
        if field["name"].endswith("_at") or field["name"] == "timestamp":
            assert type_label(field["type"]).lstrip("?") == "long", field["name"]


_NOT_KEYED_BY_RUN = {
    "DeadLetter": "topic",
    "ScheduleCommand": "schedule_id",
    "ScheduleState": "schedule_id",
    "StateCheckpoint": "partition",
}


@pytest.mark.parametrize("name", NAMES)
def test_every_record_starts_with_what_it_is_keyed_by(name: str) -> None:
    # keyed by run id, except dead letters (keyed like the failed record), schedules (`schedule:{id}`) and
    # the per-partition restore checkpoint
    assert SCHEMAS[name]["fields"][0]["name"] == _NOT_KEYED_BY_RUN.get(name, "run_id")


def test_history_events_carry_run_id_seq_timestamp_first() -> None:
    history = [name for name, fields in documented_records().items() if fields[1] == ("seq", "long")]
    assert "WorkflowStarted" in history and "WorkflowContinuedAsNew" in history
    for name in history:
        assert [field["name"] for field in SCHEMAS[name]["fields"][:3]] == ["run_id", "seq", "timestamp"]


def test_payload_and_error_info_are_defined_the_same_everywhere() -> None:
    definitions: dict[str, list[str]] = {"Payload": [], "ErrorInfo": []}
    for name in NAMES:
        for named in walk_named(SCHEMAS[name]):
            if named["name"] in definitions:
                definitions[named["name"]].append(json.dumps(named, sort_keys=True))
    assert definitions["Payload"] and definitions["ErrorInfo"]
    assert len(set(definitions["Payload"])) == 1
    assert len(set(definitions["ErrorInfo"])) == 1
    payload = json.loads(definitions["Payload"][0])
    error = json.loads(definitions["ErrorInfo"][0])
    assert [(f["name"], type_label(f["type"])) for f in payload["fields"]] == PAYLOAD_FIELDS
    assert [(f["name"], type_label(f["type"])) for f in error["fields"]] == ERROR_INFO_FIELDS


@pytest.mark.parametrize("name", NAMES)
def test_nested_types_are_defined_at_first_use_and_referenced_after(name: str) -> None:
    defined = [named["name"] for named in walk_named(SCHEMAS[name])]
    assert len(defined) == len(set(defined))  # each named type defined once per file
