"""Malformed json+types documents are refused with the reason; values no codec carries, with their path and type."""

from __future__ import annotations

import dataclasses
import sys
import threading

import pydantic
import pytest
from typed_samples import Customer, Point, round_trip

from engine import payload_type
from schemas import PayloadError, SchemaError, decode_payload, encode_payload


def _typed(text: str) -> object:
    return decode_payload({"codec": "json+types", "data": text.encode()})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"$kflow":"complex","re":1}', "unknown tag 'complex'"),
        ('{"$kflow":7}', "unknown tag 7"),
        ('{"$kflow":"tuple"}', "the 'tuple' tag needs the member 'items'"),
        ('{"$kflow":"set","items":{}}', "'set'.items must be an array, got dict"),
        ('{"$kflow":"set","items":[[1]]}', "cannot rebuild a 'set' tag: TypeError"),
        ('{"$kflow":"dict","items":[[1]]}', "must hold [key, value] pairs"),
        ('{"$kflow":"dict","items":[[[1],2]]}', "cannot rebuild a 'dict' tag: TypeError"),
        ('{"$kflow":"float","value":"1.5"}', "must be NaN, Infinity or -Infinity"),
        ('{"$kflow":"bytes","base64":"not base64!"}', "'bytes'.base64 is not base64"),
        ('{"$kflow":"bytes","base64":1}', "'bytes'.base64 must be a string, got int"),
        ('{"$kflow":"decimal","value":"1,5"}', "cannot rebuild a 'decimal' tag"),
        ('{"$kflow":"decimal","value":" 1"}', "surrounding white space"),
        ('{"$kflow":"uuid","value":"xyz"}', "cannot rebuild a 'uuid' tag"),
        ('{"$kflow":"datetime","value":"2024-13-01T00:00:00"}', "cannot rebuild a 'datetime' tag"),
        ('{"$kflow":"datetime","value":"2024-01-01T00:00:00","zone":"Mars/Olympus"}', "cannot rebuild a 'datetime'"),
        ('{"$kflow":"datetime","value":"2024-01-01T00:00:00","fold":2}', "'datetime'.fold must be 0 or 1"),
        ('{"$kflow":"time","value":"25:00"}', "cannot rebuild a 'time' tag"),
        ('{"$kflow":"date","value":"2024-02-30"}', "cannot rebuild a 'date' tag"),
        ('{"$kflow":"timedelta","days":1,"seconds":0}', "needs the member 'microseconds'"),
        ('{"$kflow":"timedelta","days":1.5,"seconds":0,"microseconds":0}', "'timedelta'.days must be an integer"),
        ('{"$kflow":"enum","class":"typed_samples:Colour"}', "the 'enum' tag needs the member 'name'"),
        ('{"$kflow":"dataclass","class":"typed_samples:Point","fields":[1]}', "'dataclass'.fields must be an object"),
        ('{"$kflow":"pydantic","class":"typed_samples:Customer","data":{"fullName":1}}', "ValidationError"),
        ("[NaN]", "invalid json+types payload: NaN is not valid JSON"),
        ("[1", "invalid json+types payload"),
        ("\udcff", "invalid json+types payload"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith(("{", "[")) else None,
)
def test_a_malformed_document_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(PayloadError) as refused:
        decode_payload({"codec": "json+types", "data": text.encode("utf-8", "surrogateescape")})
    assert reason in str(refused.value)


def test_decoding_errors_are_schema_errors_so_hosts_handle_them_as_before() -> None:
    with pytest.raises(SchemaError):
        _typed('{"$kflow":"nope"}')


def test_unknown_members_of_a_known_tag_are_ignored() -> None:
    assert _typed('{"$kflow":"tuple","items":[1],"since":"v2"}') == (1,)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"items": [1, 2, object()]}, '$.result["items"][2]: object'),
        ((1, {2: [threading.Lock()]}), "$.result[1][2][0]: _thread.lock"),
        ({frozenset({1}): print}, "$.result[frozenset({1})]: builtin_function_or_method"),
        ({Unprintable(): 1}, "$.result<key 0>: test_schemas_typed_errors.Unprintable"),
        ([{1, object()}], "$.result[0][*]: object"),
        (Point(1, lambda: 0), "$.result.y: function"),  # type: ignore[arg-type]
    ],
    ids=["dict-list", "nested", "key-label", "bad-key", "set", "dataclass"],
)
def test_a_value_no_json_codec_carries_is_refused_with_its_path_and_type(value: object, where: str) -> None:
    with pytest.raises(PayloadError) as refused:
        encode_payload(value, path="$.result")
    assert str(refused.value).startswith(f"{where} cannot be encoded"), str(refused.value)


def test_a_model_field_no_json_codec_carries_is_refused_with_its_path() -> None:
    unchecked = Customer.model_construct(name=object(), since=None)  # not validated: any value gets in
    with pytest.warns(UserWarning, match="serializer warnings"), pytest.raises(PayloadError) as refused:
        encode_payload({"c": unchecked}, path="$.result")
    assert str(refused.value).startswith('$.result["c"].fullName: object cannot be encoded')


@payload_type
class Loud(pydantic.BaseModel):
    n: int

    @pydantic.field_serializer("n")
    def _n(self, n: int) -> int:
        raise RuntimeError("will not say")


def test_a_model_whose_serializer_fails_is_refused_with_the_reason() -> None:
    with pytest.raises(
        PayloadError, match=r"^\$\[0\]: test_schemas_typed_errors:Loud.model_dump\(\) raised .*will not say"
    ):
        encode_payload([Loud(n=1)])


def test_a_typed_reference_cycle_is_refused() -> None:
    @dataclasses.dataclass
    class Node:
        next: object = None

    from engine import register_payload_types

    register_payload_types(Node)
    node = Node()
    node.next = (node,)
    with pytest.raises(PayloadError, match=r"^\$\.next\[0\]: .*Node contains itself \(a reference cycle\)"):
        encode_payload(node)


def test_too_deep_a_value_is_refused_not_crashed() -> None:
    deep: object = 1
    for _ in range(sys.getrecursionlimit() + 10):
        deep = (deep,)
    with pytest.raises(PayloadError, match="nested too deeply"):
        encode_payload(deep)


def test_without_pydantic_loaded_dataclasses_still_travel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)  # the codec never imports it: it looks in sys.modules
    assert round_trip(Point(1, 2.0)) == Point(1, 2.0)
    assert encode_payload([1, "x"]) == {"codec": "json", "data": b'[1,"x"]'}
