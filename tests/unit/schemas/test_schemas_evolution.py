"""Schema evolution: every record kflow ever wrote stays readable, and a change to an ``.avsc`` must be backward
and forward compatible with every released version (docs/evolution.md).

- Compatibility: each released schema against today's, both ways, by Apache avro's own checker (Avro's rules).
- Golden bytes: one record of every type as each release wrote it (``tests/golden/<version>/``) decodes forever.
- Resolution: a reader of one schema set reads records of another (old by the released copies, newer by a
  learned schema), through `Codec` and `RecordCodec`.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import avro.compatibility
import avro.name
import avro.schema
import pytest
from schema_samples import NAMES, SCHEMA_DIR, SCHEMAS, sample

from engine.runtime import StepCompleted
from schemas import Codec, RecordCodec, SchemaError, learn_schema, set_schema_source

ROOT = SCHEMA_DIR.parent
GOLDEN = ROOT / "tests" / "golden"
RELEASED = SCHEMA_DIR / "released"
RELEASES = sorted(path.name for path in RELEASED.iterdir() if path.is_dir())
CODEC = Codec()


def _load(directory: Path) -> dict[str, avro.schema.Schema]:
    names = avro.name.Names()
    for path in sorted((directory / "types").glob("*.avsc")):
        avro.schema.make_avsc_object(json.loads(path.read_text("utf-8")), names)
    return {
        path.stem: avro.schema.make_avsc_object(json.loads(path.read_text("utf-8")), names)
        for path in sorted(directory.glob("*.avsc"))
    }


def incompatibilities(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
    """Why records written with ``writer`` cannot be read with ``reader`` (empty: they can), by Apache avro."""
    result = avro.compatibility.ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is avro.compatibility.SchemaCompatibilityType.compatible:
        return []
    found = zip(result.incompatibilities, result.messages, result.locations, strict=False)
    return [f"{kind.name}: {message} at {location}" for kind, message, location in found]


CURRENT = _load(SCHEMA_DIR)


def test_there_is_a_release_and_it_has_golden_bytes_for_every_record_type() -> None:
    assert RELEASES, "schemas/released/ holds no release"
    for version in RELEASES:
        released = {path.stem for path in (RELEASED / version).glob("*.avsc")}
        assert {path.stem for path in (GOLDEN / version).glob("*.bin")} == released, version


@pytest.mark.parametrize("version", RELEASES)
def test_every_released_schema_is_backward_and_forward_compatible_with_today(version: str) -> None:
    problems = []
    for name, old in _load(RELEASED / version).items():
        new = CURRENT.get(name)
        if new is None:
            problems.append(f"{name}: removed, but {version} wrote it (its records could no longer be read)")
            continue
        problems += [f"{name} (today reading {version}): {why}" for why in incompatibilities(new, old)]
        problems += [f"{name} ({version} reading today): {why}" for why in incompatibilities(old, new)]
    assert problems == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda fields: fields.append({"name": "note", "type": "string", "doc": "d"}),
            "reader_field_missing_default_value",
        ),
        (lambda fields: fields.__setitem__(0, dict(fields[0], type="int")), "type_mismatch"),
        (lambda fields: fields.pop(1), "reader_field_missing_default_value"),
    ],
    ids=["added-without-default", "type-changed", "removed-without-default"],
)
def test_the_compatibility_check_catches_a_breaking_change(change: object, why: str) -> None:
    broken = json.loads((SCHEMA_DIR / "StepCompleted.avsc").read_text("utf-8"))
    change(broken["fields"])  # type: ignore[operator]
    names = avro.name.Names()
    for path in sorted((SCHEMA_DIR / "types").glob("*.avsc")):
        avro.schema.make_avsc_object(json.loads(path.read_text("utf-8")), names)
    new = avro.schema.make_avsc_object(broken, names)
    found = incompatibilities(new, CURRENT["StepCompleted"]) + incompatibilities(CURRENT["StepCompleted"], new)
    assert any(why in problem for problem in found), found


def _golden() -> Iterator[tuple[str, str]]:
    for version in sorted(path.name for path in GOLDEN.iterdir() if path.is_dir()):
        for path in sorted((GOLDEN / version).glob("*.bin")):
            yield version, path.stem


def _from_json(value: object) -> object:
    if isinstance(value, dict) and set(value) == {"$bytes"}:
        return base64.b64decode(value["$bytes"])
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


@pytest.mark.parametrize(("version", "name"), list(_golden()))
def test_golden_bytes_decode_forever(version: str, name: str) -> None:
    data = (GOLDEN / version / f"{name}.bin").read_bytes()
    expected = _from_json(json.loads((GOLDEN / version / f"{name}.json").read_text("utf-8")))
    assert isinstance(expected, dict)
    decoded = CODEC.decode(data)
    assert decoded.name == name
    defaults = {str(f["name"]): f.get("default") for f in SCHEMAS[name]["fields"]}  # type: ignore[union-attr]
    # Fields added since that release read as their defaults; every field it wrote reads back as written.
    assert decoded.record == {field: expected.get(field, defaults[field]) for field in defaults}
    try:
        RecordCodec().decode(data)  # the engine record builds too
    except SchemaError as exc:
        assert "have no engine type" in str(exc)


# --- resolution across schema sets ----------------------------------------------------------------------------


def _newer_set(tmp_path: Path) -> Path:
    """Today's schemas with an optional field added to StepCompleted and to StartWorkflow, today's set released."""
    newer = tmp_path / "newer"
    shutil.copytree(SCHEMA_DIR, newer, ignore=shutil.ignore_patterns("*.py", "__pycache__", "py.typed", "released"))
    skip = shutil.ignore_patterns("*.py", "__pycache__", "py.typed", "released")
    shutil.copytree(SCHEMA_DIR, newer / "released" / "today", ignore=skip)
    for name in ("StepCompleted", "StartWorkflow"):
        schema = json.loads((newer / f"{name}.avsc").read_text("utf-8"))
        schema["fields"].append({"name": "note", "type": ["null", "string"], "default": None, "doc": "added later"})
        (newer / f"{name}.avsc").write_text(json.dumps(schema))
    return newer


@pytest.fixture
def no_schema_source() -> Iterator[None]:
    previous = set_schema_source(None)
    yield
    set_schema_source(previous)


def test_a_newer_reader_reads_old_records_with_the_added_field_at_its_default(tmp_path: Path) -> None:
    newer = Codec(_newer_set(tmp_path))
    assert newer.fingerprint("StepCompleted") != CODEC.fingerprint("StepCompleted")
    old = CODEC.encode("StepCompleted", sample("StepCompleted", fill=True))
    assert newer.decode(old).record == {**sample("StepCompleted", fill=True), "note": None}


def test_an_older_reader_reads_newer_records_once_it_learned_their_schema(
    tmp_path: Path, no_schema_source: None
) -> None:
    newer = Codec(_newer_set(tmp_path))
    record = {**sample("StepCompleted", fill=True), "note": "from the future"}
    data = newer.encode("StepCompleted", record)
    fingerprint = newer.fingerprint("StepCompleted")
    if not CODEC.knows(fingerprint):  # learned by an earlier test of this process otherwise
        with pytest.raises(SchemaError, match=f"unknown fingerprint {fingerprint.hex()}"):
            CODEC.decode(data)
    assert learn_schema(newer.writer_schemas()[fingerprint]) == fingerprint
    assert CODEC.knows(fingerprint)
    assert CODEC.decode(data).record == sample("StepCompleted", fill=True)  # the field it does not know: skipped


def test_an_unknown_fingerprint_asks_the_schema_source_once(tmp_path: Path, no_schema_source: None) -> None:
    newer = Codec(_newer_set(tmp_path))
    schema = json.loads(newer.writer_schemas()[newer.fingerprint("StartWorkflow")])
    schema["doc"] = "a doc makes no new fingerprint, a new field does"
    schema["fields"].append({"name": "other", "type": ["null", "long"], "default": None})
    third = json.dumps(schema)
    asked: list[bytes] = []

    def source(unknown: bytes) -> None:
        asked.append(unknown)
        learn_schema(third)

    set_schema_source(source)
    writer = _writer_bytes(third, sample("StartWorkflow", fill=True) | {"note": None, "other": 5})
    fingerprint = writer[2:10]
    assert CODEC.decode(writer).record == sample("StartWorkflow", fill=True)
    assert CODEC.decode(writer).record == sample("StartWorkflow", fill=True)
    assert asked == [fingerprint]  # learned for good after the first lookup


def _writer_bytes(schema_json: str, record: dict[str, object]) -> bytes:
    """Single-object bytes of ``record`` written with an arbitrary schema (as another release would)."""
    import io

    import fastavro.schema
    from fastavro import parse_schema, schemaless_writer
    from fastavro.schema import to_parsing_canonical_form

    parsed = parse_schema(json.loads(schema_json))
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    out = io.BytesIO()
    out.write(b"\xc3\x01" + fingerprint)
    schemaless_writer(out, parsed, record)
    return out.getvalue()


def test_a_record_type_this_release_does_not_know_is_refused_by_name(no_schema_source: None) -> None:
    schema = {
        "type": "record",
        "name": "FromTheFuture",
        "namespace": "kflow",
        "fields": [{"name": "run_id", "type": "string"}],
    }
    data = _writer_bytes(json.dumps(schema), {"run_id": "r"})
    learn_schema(json.dumps(schema))  # a newer release published it; this one still has no reader for it
    with pytest.raises(SchemaError, match=r"record type FromTheFuture \(fingerprint \w+\) is unknown to this release"):
        CODEC.decode(data)


def test_the_engine_codec_works_with_a_schema_ahead_of_the_code(tmp_path: Path) -> None:
    # The newer set has StepCompleted.note, which the engine record lacks: written with its default, dropped on read.
    records = RecordCodec(Codec(_newer_set(tmp_path)))
    event = StepCompleted(run_id="r" * 32, seq=3, timestamp=5, position=1, attempt=1, result={"x": [1, 2]})
    data = records.encode(event)
    assert records.decode(data) == event
    learn_schema(records.codec.writer_schemas()[data[2:10]])
    assert RecordCodec().decode(data) == event  # today's code reads it too


@pytest.mark.parametrize("name", NAMES)
def test_writer_schemas_are_the_expanded_schemas_by_fingerprint(name: str) -> None:
    published = CODEC.writer_schemas()[CODEC.fingerprint(name)]
    assert json.loads(published) == SCHEMAS[name]
    assert learn_schema(published) == CODEC.fingerprint(name)
