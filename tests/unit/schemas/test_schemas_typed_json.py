"""The JSON payload codecs: plain JSON byte for byte as before, every other carried value exactly (json+types)."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typed_samples import PARIS, Colour, Customer, Ledger, Order, Perm, Point, Size, Slotted, Tone, round_trip, same

from engine.runtime import CallArgs
from schemas import RecordCodec, decode_payload, encode_payload

# --- plain JSON: unchanged -------------------------------------------------------------------------

# The encoder of the json codec as it was before json+types existed: plain values must still get exactly its bytes.
BEFORE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=25,
)


def _no_surrogates(value: object) -> bool:
    try:
        BEFORE.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(PLAIN.filter(_no_surrogates))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_plain_json_is_written_byte_for_byte_as_before(value: object) -> None:
    assert encode_payload(value) == {"codec": "json", "data": BEFORE.encode(value).encode("utf-8")}
    assert same(decode_payload(encode_payload(value)), value)


@given(st.lists(PLAIN.filter(_no_surrogates), max_size=3), st.dictionaries(st.text(), PLAIN, max_size=3))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_plain_call_arguments_are_written_byte_for_byte_as_before(
    args: list[object], kwargs: dict[str, object]
) -> None:
    if not _no_surrogates(kwargs):
        return
    records = RecordCodec()
    encoded = records.codec.decode(records.encode(_start(CallArgs(tuple(args), kwargs)))).record["args"]
    assert encoded == {"codec": "json", "data": BEFORE.encode({"args": args, "kwargs": kwargs}).encode("utf-8")}


def _start(args: CallArgs) -> object:
    from engine.runtime import StartWorkflow

    return StartWorkflow(run_id="r", workflow_name="w", args=args, requested_at=1)


def test_subclasses_of_json_built_ins_stay_plain_as_before() -> None:
    from collections import OrderedDict, defaultdict

    value = [OrderedDict(a=1), defaultdict(list, b=[2]), type("S", (str,), {})("s")]
    assert encode_payload(value) == {"codec": "json", "data": b'[{"a":1},{"b":[2]},"s"]'}


def test_decoding_json_is_unchanged_tag_lookalikes_included() -> None:
    data = b'{"$kflow":"tuple","items":[1,2],"t":[3]}'
    assert decode_payload({"codec": "json", "data": data}) == {"$kflow": "tuple", "items": [1, 2], "t": [3]}
    assert encode_payload({"$kflow": "tuple", "items": [1, 2]})["codec"] == "json"  # plain: no tags in json


# --- typed values: exactly ---------------------------------------------------------------------------

OFFSETS = st.builds(
    datetime.timezone,
    st.timedeltas(min_value=datetime.timedelta(hours=-23, minutes=-59), max_value=datetime.timedelta(hours=23)),
)
ZONES = st.none() | OFFSETS | st.timezones()
HASHABLE_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)  # NaN is no dict key or set member anyone can look up
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]))
    | st.binary(max_size=8)
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.dates()
    | st.datetimes(timezones=ZONES)
    | st.times(timezones=st.none() | OFFSETS)
    | st.timedeltas()
    | st.sampled_from([*Colour, *Size, *Tone, Perm.R, Perm.R | Perm.X, Perm(0)])
    | st.builds(Point, st.integers(), st.floats(allow_nan=False))
)
LEAVES = (
    HASHABLE_LEAVES
    | st.floats()
    | st.decimals()
    | st.builds(bytearray, st.binary(max_size=8))
    | st.builds(
        Order,
        st.text(),
        st.decimals(allow_nan=False),
        st.datetimes(timezones=ZONES),
        st.lists(st.builds(Point, st.integers())),
    )
    | st.builds(
        lambda n, d, i: Customer(fullName=n, since=d, ids=tuple(i)), st.text(), st.dates(), st.lists(st.integers())
    )
)
HASHABLE = st.recursive(HASHABLE_LEAVES, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=6)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(), children, max_size=3)
        | st.dictionaries(HASHABLE, children, max_size=3)
        | st.sets(HASHABLE, max_size=3)
        | st.frozensets(HASHABLE, max_size=3)
        | st.builds(Slotted, st.dictionaries(HASHABLE, children, max_size=2))
    ),
    max_leaves=30,
)


def test_exactness_as_these_tests_check_it_tells_types_apart() -> None:
    winter = datetime.datetime(2024, 1, 1, 12)
    plus_one = datetime.timezone(datetime.timedelta(hours=1))
    assert same([math.nan, (1,)], [math.nan, (1,)])
    assert not same((1,), [1]) and not same(1, 1.0) and not same(0.0, -0.0) and not same(True, 1)
    assert not same(decimal.Decimal("1.0"), decimal.Decimal("1.00")) and not same({1: 2}, {1.0: 2})
    assert not same(winter.replace(tzinfo=PARIS), winter.replace(tzinfo=plus_one))  # same instant, other tzinfo
    assert not same(winter, winter.replace(fold=1)) and not same({frozenset({1})}, {frozenset({1.0})})
    assert not same(Point(1, 2.0), Point(1, 2))


@given(VALUES)
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_every_carried_value_comes_back_exactly(value: object) -> None:
    payload = encode_payload(value)
    assert payload["codec"] in ("json", "json+types")
    back = decode_payload(payload)
    assert same(back, value), (value, back)
    assert encode_payload(back) == payload  # and encodes to the same bytes again


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        [1, [2, (3,)]],
        {"k": {1, 2}},
        {1: "int key"},
        {"nan": math.nan},
        Colour.RED,
        Size.M,  # an int, but an Enum member: typed
        {Tone.WARM: 1, "warm": 2},  # a str-Enum key and the str it equals: two keys, kept apart
    ],
    ids=str,
)
def test_anything_plain_json_cannot_carry_exactly_makes_the_payload_typed(value: object) -> None:
    payload = encode_payload(value)
    assert payload["codec"] == "json+types"
    assert same(decode_payload(payload), value)


def test_datetimes_keep_offset_zone_fold_and_microseconds() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    for value in (
        datetime.datetime(2024, 5, 1, 12, 30, 0, 123456),  # naive stays naive
        datetime.datetime(2024, 5, 1, 12, 30, 0, 1, tzinfo=plus_two),
        datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
        datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),  # the second 02:30 of the night
        datetime.datetime(2024, 10, 27, 2, 30, fold=0, tzinfo=PARIS),
        datetime.time(23, 59, 59, 999999, tzinfo=plus_two),
        datetime.time(8, 0, tzinfo=PARIS),
    ):
        back = round_trip(value)
        assert same(back, value), (value, back)
    back = round_trip(datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS))
    assert (
        isinstance(back, datetime.datetime) and back.tzinfo is PARIS and back.utcoffset() == datetime.timedelta(hours=1)
    )


def test_a_pydantic_root_model_and_its_non_string_keys() -> None:
    ledger = Ledger({1: decimal.Decimal("1.50"), 2: decimal.Decimal("-0")})
    back = round_trip(ledger)
    assert type(back) is Ledger and same(back.root, ledger.root)  # type: ignore[attr-defined]


def test_a_dataclass_keeps_its_fields_not_given_to_init() -> None:
    order = Order("o-1", decimal.Decimal("9.50"), datetime.datetime(2024, 1, 1), [Point(1)])
    order.total = 99  # no longer what __post_init__ computes: the recorded value wins
    back = round_trip(order)
    assert type(back) is Order and back.total == 99 and same(back, order)  # type: ignore[attr-defined]


# --- the documented examples -------------------------------------------------------------------------

EXAMPLES: list[tuple[object, str]] = [
    ((1, "a"), '{"$kflow":"tuple","items":[1,"a"]}'),
    ({3, 1, 2}, '{"$kflow":"set","items":[1,2,3]}'),
    (frozenset({"b"}), '{"$kflow":"frozenset","items":["b"]}'),
    ({(1, 2): "x", None: 0}, '{"$kflow":"dict","items":[[{"$kflow":"tuple","items":[1,2]},"x"],[null,0]]}'),
    (
        {"$kflow": "x", "t": (1,)},  # a user dict with the tag member, in a typed document: escaped
        '{"$kflow":"dict","items":[["$kflow","x"],["t",{"$kflow":"tuple","items":[1]}]]}',
    ),
    (
        [math.nan, math.inf, -math.inf],
        '[{"$kflow":"float","value":"NaN"},{"$kflow":"float","value":"Infinity"},'
        '{"$kflow":"float","value":"-Infinity"}]',
    ),
    (b"\x00\xffkflow", '{"$kflow":"bytes","base64":"AP9rZmxvdw=="}'),
    (bytearray(b"ab"), '{"$kflow":"bytearray","base64":"YWI="}'),
    (decimal.Decimal("9.50"), '{"$kflow":"decimal","value":"9.50"}'),
    (
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        '{"$kflow":"uuid","value":"12345678-1234-5678-1234-567812345678"}',
    ),
    (datetime.datetime(2024, 5, 1, 12, 30, 0, 123456), '{"$kflow":"datetime","value":"2024-05-01T12:30:00.123456"}'),
    (
        datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
        '{"$kflow":"datetime","value":"2024-05-01T12:30:00-05:00"}',
    ),
    (
        datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),
        '{"$kflow":"datetime","value":"2024-10-27T02:30:00+01:00","zone":"Europe/Paris","fold":1}',
    ),
    (datetime.date(2024, 2, 29), '{"$kflow":"date","value":"2024-02-29"}'),
    (datetime.time(8, 15, 0, 500), '{"$kflow":"time","value":"08:15:00.000500"}'),
    (datetime.time(8, 15, tzinfo=PARIS), '{"$kflow":"time","value":"08:15:00","zone":"Europe/Paris"}'),
    (
        datetime.timedelta(days=-1, seconds=5, microseconds=7),
        '{"$kflow":"timedelta","days":-1,"seconds":5,"microseconds":7}',
    ),
    (Colour.RED, '{"$kflow":"enum","class":"typed_samples:Colour","name":"RED"}'),
    (Perm.R | Perm.W, '{"$kflow":"enum","class":"typed_samples:Perm","name":"R|W"}'),
    (Point(1, 2.5), '{"$kflow":"dataclass","class":"typed_samples:Point","fields":{"x":1,"y":2.5}}'),
    (
        Customer(fullName="Ada", since=datetime.date(2020, 1, 2), ids=(7,)),
        '{"$kflow":"pydantic","class":"typed_samples:Customer","data":{"fullName":"Ada","since":'
        '{"$kflow":"date","value":"2020-01-02"},"ids":{"$kflow":"tuple","items":[7]},"favourite":null}}',
    ),
]


@pytest.mark.parametrize(("value", "text"), EXAMPLES, ids=[t for _, t in EXAMPLES])
def test_documented_examples(value: object, text: str) -> None:
    assert encode_payload(value) == {"codec": "json+types", "data": text.encode()}
    assert same(decode_payload({"codec": "json+types", "data": text.encode()}), value)


def test_the_spec_shows_the_examples_as_they_are_written() -> None:
    spec = (Path(__file__).parents[3] / "docs" / "payloads.md").read_text()
    missing = [text for _, text in EXAMPLES if text.replace("typed_samples", "myapp.models") not in spec]
    assert missing == []
