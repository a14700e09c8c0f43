"""Classes in typed payloads come only from the allow-list: registered, or defined in a workflow's or step's module;
nothing is ever imported by a name read from a payload."""

from __future__ import annotations

import dataclasses
import enum
import sys

import pytest
from typed_samples import Colour, Perm, Point, round_trip

import engine
from engine import Registry, payload_type, register_payload_types, step, workflow
from engine.runtime import CallArgs, PayloadTypes, StepResult
from schemas import PayloadError, RecordCodec, UnresolvedValue, decode_payload, encode_payload


@dataclasses.dataclass(frozen=True)
class Parcel:  # defined in this module, never registered: allowed only through a registry of this module
    weight: float
    colour: Colour


class Speed(enum.Enum):
    SLOW = 1


@step
async def ship(parcel: Parcel) -> Parcel:
    return parcel


@workflow
async def shipping(parcel: Parcel) -> Parcel:
    return await ship(parcel)


MODULE_TYPES = Registry([ship, shipping]).payload_types


def test_a_class_defined_in_a_workflow_module_is_allowed_by_that_registry() -> None:
    parcel = Parcel(2.5, Colour.RED)
    assert MODULE_TYPES.modules == frozenset({__name__})
    back = round_trip(parcel, types=MODULE_TYPES)
    assert back == parcel and type(back) is Parcel
    assert round_trip(Speed.SLOW, types=MODULE_TYPES) is Speed.SLOW


def test_a_class_nobody_allowed_is_refused_when_encoding_naming_it_and_the_way_to_allow_it() -> None:
    with pytest.raises(PayloadError) as refused:
        encode_payload({"p": [Parcel(1.0, Colour.RED)]}, path="$.result")
    message = str(refused.value)
    assert message.startswith(f'$.result["p"][0]: {__name__}:Parcel is not an allowed payload class')
    assert "@engine.payload_type" in message and "-A MODULE" in message


def test_a_class_nobody_allowed_is_refused_when_decoding() -> None:
    data = encode_payload(Parcel(1.0, Colour.RED), types=MODULE_TYPES)
    with pytest.raises(PayloadError) as refused:
        decode_payload(data)
    assert f"names the class {__name__}:Parcel (dataclass), which is not allowed" in str(refused.value)
    assert "@engine.payload_type" in str(refused.value)


def test_a_class_imported_into_a_workflow_module_is_not_defined_there() -> None:
    types = PayloadTypes([__name__, "typed_samples"])
    assert types.resolve(f"{__name__}:Colour") is None  # Colour is imported here, named typed_samples:Colour
    assert types.resolve("typed_samples:Colour") is Colour
    assert types.resolve(f"{__name__}:MODULE_TYPES") is None  # not a class
    assert types.resolve(f"{__name__}:ship") is None  # not a payload class
    assert types.resolve(f"{__name__}:Parcel.__init__") is None


def test_decoding_never_imports_the_module_a_payload_names() -> None:
    sys.modules.pop("import_probe", None)
    text = b'{"$kflow":"dataclass","class":"import_probe:Thing","fields":{"value":1}}'
    with pytest.raises(PayloadError, match="import_probe:Thing"):
        decode_payload({"codec": "json+types", "data": text}, types=PayloadTypes(["import_probe"]))
    assert "import_probe" not in sys.modules
    import import_probe  # once imported by the application, and its module allowed, it resolves

    value = decode_payload({"codec": "json+types", "data": text}, types=PayloadTypes(["import_probe"]))
    assert value == import_probe.Thing(1)


def test_registered_classes_are_allowed_everywhere() -> None:
    @dataclasses.dataclass
    class Local:
        n: int

    with pytest.raises(PayloadError, match=r"^\$: .*Local is defined inside a function"):
        encode_payload(Local(1))
    register_payload_types(Local)
    assert round_trip(Local(1)) == Local(1)
    assert payload_type(Point) is Point  # the decorator returns the class


@pytest.mark.parametrize("cls", [object, int, type("Plain", (), {}), dict], ids=str)
def test_only_enums_dataclasses_and_pydantic_models_can_be_registered(cls: type) -> None:
    with pytest.raises(TypeError, match="payload types are Enum, dataclass or pydantic model classes"):
        register_payload_types(Point, cls)


def test_the_authoring_api_exports_the_registration() -> None:
    assert engine.payload_type is payload_type and engine.register_payload_types is register_payload_types


def test_a_payload_naming_a_class_of_another_kind_or_a_missing_member_is_refused() -> None:
    types = PayloadTypes()
    wrong_kind = b'{"$kflow":"dataclass","class":"typed_samples:Colour","fields":{}}'
    with pytest.raises(PayloadError, match="names typed_samples:Colour as a dataclass, but that class is not one"):
        decode_payload({"codec": "json+types", "data": wrong_kind}, types=types)
    missing = b'{"$kflow":"enum","class":"typed_samples:Colour","name":"MAUVE"}'
    with pytest.raises(PayloadError, match="a member 'MAUVE' that typed_samples:Colour does not have"):
        decode_payload({"codec": "json+types", "data": missing}, types=types)
    flags = b'{"$kflow":"enum","class":"typed_samples:Perm","name":""}'
    assert decode_payload({"codec": "json+types", "data": flags}) is Perm(0)


def test_a_dataclass_payload_tolerates_fields_the_class_lost_and_gained() -> None:
    text = b'{"$kflow":"dataclass","class":"typed_samples:Point","fields":{"x":3,"gone":true}}'
    assert decode_payload({"codec": "json+types", "data": text}) == Point(3, 0.0)
    bad = b'{"$kflow":"dataclass","class":"typed_samples:Point","fields":{"y":1.0}}'
    with pytest.raises(PayloadError, match="cannot rebuild a 'dataclass' tag: TypeError"):
        decode_payload({"codec": "json+types", "data": bad})


def test_a_host_that_only_stores_values_keeps_unknown_classes_and_writes_them_back_unchanged() -> None:
    value = {"parcel": Parcel(1.5, Colour.RED), "speed": (Speed.SLOW,)}
    payload = encode_payload(value, types=MODULE_TYPES)
    kept = decode_payload(payload, keep_unknown=True)
    assert isinstance(kept, dict)
    assert kept["parcel"] == UnresolvedValue("dataclass", f"{__name__}:Parcel", {"weight": 1.5, "colour": Colour.RED})
    assert kept["speed"] == (UnresolvedValue("enum", f"{__name__}:Speed", "SLOW"),)
    assert encode_payload(kept) == payload
    assert repr(kept["speed"][0]) == f"<enum {__name__}:Speed 'SLOW'>"


def test_the_record_codec_reads_and_writes_with_its_allow_list() -> None:
    result = StepResult(
        run_id="r",
        position=0,
        attempt=1,
        ok=True,
        result=Parcel(1.0, Colour.RED),
        worker="w",
        started_at=1,
        finished_at=2,
    )
    strict = RecordCodec(types=MODULE_TYPES)
    data = strict.encode(result)
    assert strict.decode(data) == result
    with pytest.raises(PayloadError, match="not allowed in this process"):
        RecordCodec().decode(data)
    with pytest.raises(PayloadError, match=r"^\$\.result: .*Parcel is not an allowed payload class"):
        RecordCodec().encode(result)
    stored = RecordCodec().keeping_unknown().decode(data)
    assert isinstance(stored, StepResult) and isinstance(stored.result, UnresolvedValue)


def test_the_record_codec_checks_values_as_it_would_encode_them() -> None:
    records = RecordCodec(types=MODULE_TYPES)
    check = records.payload_check
    assert check is not None
    check(CallArgs((Parcel(1.0, Colour.RED),), {"at": {1, 2}}), "args")
    with pytest.raises(PayloadError, match=r'^\$\.kwargs\["late"\]\[0\]: object cannot be encoded'):
        check(CallArgs((1,), {"late": [object()]}), "args")
    with pytest.raises(PayloadError, match=r"^\$\.result\.weight: function cannot be encoded"):
        check(Parcel(lambda: 1, Colour.RED), "result")  # type: ignore[arg-type]
    assert RecordCodec(payload_codec="cloudpickle", secret=b"k").payload_check is None
