"""The schema files follow docs/records.md and the schema conventions."""

from __future__ import annotations

import json

import avro.name
import avro.schema
import fastavro
import pytest
from schema_samples import NAMES, SCHEMA_DIR, SCHEMAS, documented_records, shared_types, type_label, walk_named

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


def test_the_whole_directory_loads_into_one_parser_in_fastavro_and_apache_avro() -> None:
    # As code generators load it: the shared types first, then every record referencing them by name. A type
    # defined twice fails here (Apache avro: "the name ... is already in use").
    names = avro.name.Names()
    named: dict[str, object] = {}
    for path in sorted((SCHEMA_DIR / "types").glob("*.avsc")):
        avro.schema.make_avsc_object(json.loads(path.read_text("utf-8")), names)
        fastavro.parse_schema(json.loads(path.read_text("utf-8")), named)
    for name in NAMES:
        source = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text("utf-8"))
        assert avro.schema.make_avsc_object(source, names).fullname == f"kflow.{name}"
        fastavro.parse_schema(source, named)


@pytest.mark.parametrize("name", NAMES)
def test_a_record_file_references_shared_types_and_never_defines_them(name: str) -> None:
    source = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text("utf-8"))
    inline = {named["name"] for named in walk_named(source)} - {name}
    assert not inline & set(shared_types()), f"{name} defines {inline & set(shared_types())} inline"


def test_shared_types_are_records_in_namespace_kflow_with_docs() -> None:
    shared = shared_types()
    assert set(shared) == {"Payload", "ErrorInfo"}
    for stem, schema in shared.items():
        assert schema["type"] == "record" and schema["name"] == stem and schema["namespace"] == "kflow"
        assert isinstance(schema.get("doc"), str) and all(f.get("doc") for f in schema["fields"])


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


def test_payload_and_error_info_have_the_documented_fields() -> None:
    payload, error = shared_types()["Payload"], shared_types()["ErrorInfo"]
    assert [(f["name"], type_label(f["type"])) for f in payload["fields"]] == PAYLOAD_FIELDS
    assert [(f["name"], type_label(f["type"])) for f in error["fields"]] == ERROR_INFO_FIELDS


@pytest.mark.parametrize("name", NAMES)
def test_nested_types_are_defined_at_first_use_and_referenced_after(name: str) -> None:
    defined = [named["name"] for named in walk_named(SCHEMAS[name])]
    assert len(defined) == len(set(defined))  # each named type defined once per file
