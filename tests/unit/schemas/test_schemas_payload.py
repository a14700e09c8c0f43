"""Payload codecs: compact JSON by default; cloudpickle only signed, and never unpickled unverified.

The typed side of the JSON codecs (``json+types``) is tested in test_schemas_typed_json.py."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import pickle
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Codec, PayloadError, SchemaError, decode_payload, encode_payload

SECRET = b"kflow-test-secret"
UNPICKLED: list[str] = []


def _record_unpickling(marker: str) -> str:
    UNPICKLED.append(marker)
    return marker


class Probe:
    """Unpickling a Probe appends to UNPICKLED: the proof of whether a pickle was ever loaded."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _record_unpickling, ("probe",)


@pytest.fixture(autouse=True)
def _clear_probe_log() -> None:
    UNPICKLED.clear()


# --- json -------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_json_round_trip(value: object) -> None:
    payload = encode_payload(value)
    assert payload["codec"] == "json"
    assert decode_payload(payload) == value


def test_json_is_the_default_and_compact_utf8() -> None:
    payload = encode_payload({"args": ["o-1", 9.5], "kwargs": {"note": "café"}})
    assert payload == {"codec": "json", "data": '{"args":["o-1",9.5],"kwargs":{"note":"café"}}'.encode()}


def test_json_ignores_the_secret() -> None:
    assert encode_payload([1], secret=SECRET) == encode_payload([1])
    assert decode_payload(encode_payload([1]), secret=SECRET) == [1]


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (object(), "$: object"),
        ({"when": datetime.datetime(2024, 1, 1), "probe": [1, Probe()]}, '$["probe"][1]: test_schemas_payload.Probe'),
        ({(1, 2): {"f": lambda: 1}}, '$[(1, 2)]["f"]: function'),
    ],
    ids=["object", "probe", "lambda"],
)
def test_json_refuses_a_value_it_cannot_represent_naming_its_path_and_type(value: object, where: str) -> None:
    with pytest.raises(PayloadError) as refused:
        encode_payload(value)
    assert str(refused.value).startswith(f"{where} cannot be encoded") and "cloudpickle" in str(refused.value)


@pytest.mark.parametrize(("value", "where"), [("\ud800", "$"), ({"k": ["ok", "\udfff"]}, '$["k"][1]')], ids=str)
def test_json_refuses_a_lone_surrogate_naming_its_path(value: object, where: str) -> None:
    with pytest.raises(PayloadError, match=rf"^{re.escape(where)}: str holds a lone surrogate.*cloudpickle"):
        encode_payload(value)


@pytest.mark.parametrize("typed", [False, True], ids=["plain", "typed"])
def test_json_refuses_a_cyclic_value(typed: bool) -> None:
    cyclic: list[object] = [(1,)] if typed else []
    cyclic.append({"again": cyclic})
    with pytest.raises(PayloadError, match=r'^\$\[\d\]\["again"\]: list contains itself \(a reference cycle\)'):
        encode_payload(cyclic)


@pytest.mark.parametrize("data", [b"{", b"\xff\xfe", b"NaN", b"[1] [2]", b""], ids=str)
def test_invalid_json_data_raises_payload_error(data: bytes) -> None:
    with pytest.raises(PayloadError, match="invalid json payload"):
        decode_payload({"codec": "json", "data": data})


# --- codec names and payload shape ------------------------------------------------------------------


def test_unknown_codec_raises_payload_error() -> None:
    with pytest.raises(PayloadError, match="unknown payload codec 'yaml'"):
        encode_payload(1, codec="yaml")
    with pytest.raises(PayloadError, match="unknown payload codec 'yaml'"):
        decode_payload({"codec": "yaml", "data": b"1"})


@pytest.mark.parametrize("payload", [{}, {"codec": "json"}, {"codec": "json", "data": "1"}, None], ids=str)
def test_a_malformed_payload_raises_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError):
        decode_payload(payload)  # type: ignore[arg-type]


def test_payload_error_is_a_schema_error() -> None:
    assert issubclass(PayloadError, SchemaError)


def test_payloads_travel_inside_records() -> None:
    codec = Codec()
    record = {
        "run_id": "r1",
        "seq": 9,
        "timestamp": 1,
        "result": encode_payload(lambda x: x + 1, "cloudpickle", SECRET),
    }
    decoded = codec.decode(codec.encode("WorkflowCompleted", record)).record
    result = decode_payload(decoded["result"], secret=SECRET)  # type: ignore[arg-type]
    assert callable(result) and result(1) == 2


# --- cloudpickle ------------------------------------------------------------------------------------


def test_cloudpickle_round_trip_with_secret() -> None:
    offset = 10
    value = {"when": datetime.datetime(2024, 1, 1), "tags": {"a", "b"}, "fn": lambda x: x + offset}
    payload = encode_payload(value, codec="cloudpickle", secret=SECRET)
    decoded = decode_payload(payload, secret=SECRET)
    assert isinstance(decoded, dict)
    assert decoded["when"] == value["when"] and decoded["tags"] == {"a", "b"} and decoded["fn"](1) == 11


def test_cloudpickle_data_is_a_bound_hmac_sha256_then_the_pickle() -> None:
    data = encode_payload([1, 2], codec="cloudpickle", secret=SECRET, run_id="r1", field="result")["data"]
    assert isinstance(data, bytes)
    # the spec (docs/payloads.md): a key derived for payloads, over (owner, field) written length-prefixed
    key = hmac.new(SECRET, b"kflow key derivation v1\x00payload:cloudpickle", hashlib.sha256).digest()
    bound = b"s\x00\x00\x00\x02r1" + b"s\x00\x00\x00\x06result"
    assert data[:32] == hmac.new(key, bound + data[32:], hashlib.sha256).digest()
    assert data[:32] != hmac.new(SECRET, data[32:], hashlib.sha256).digest()  # not the old, unbound format
    assert pickle.loads(data[32:]) == [1, 2]


def test_the_probe_records_unpickling_when_the_signature_verifies() -> None:
    # Control for the refusal tests below: a correctly signed probe does leave its mark.
    assert decode_payload(encode_payload(Probe(), "cloudpickle", SECRET), secret=SECRET) == "probe"
    assert UNPICKLED == ["probe"]


def test_cloudpickle_encoding_needs_a_secret() -> None:
    with pytest.raises(PayloadError, match="no secret configured"):
        encode_payload([1], codec="cloudpickle")
    with pytest.raises(PayloadError, match="non-empty bytes"):
        encode_payload([1], codec="cloudpickle", secret=b"")


def test_an_unpicklable_value_raises_payload_error() -> None:
    import threading

    with pytest.raises(PayloadError, match=r"cannot pickle a value of type _thread\.lock"):
        encode_payload(threading.Lock(), codec="cloudpickle", secret=SECRET)


def _signed_probe() -> bytes:
    data = encode_payload(Probe(), codec="cloudpickle", secret=SECRET)["data"]
    assert isinstance(data, bytes)
    return data


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.parametrize(
    ("data", "secret", "reason"),
    [
        (pickle.dumps(Probe()), SECRET, "signature does not verify"),
        (_signed_probe(), b"another secret", "signature does not verify"),
        (_signed_probe(), None, "no secret configured"),
        (_signed_probe(), b"", "non-empty bytes"),
        (_signed_probe()[:31], SECRET, "31 bytes is shorter than its 32-byte HMAC-SHA256 signature"),
        (_signed_probe()[:-1], SECRET, "signature does not verify"),
        (_flip_last_byte(_signed_probe()), SECRET, "signature does not verify"),
        (b"\x00" * 32 + pickle.dumps(Probe()), SECRET, "signature does not verify"),
    ],
    ids=[
        "unsigned",
        "wrong secret",
        "no secret",
        "empty secret",
        "shorter than mac",
        "truncated",
        "tampered",
        "zero mac",
    ],
)
def test_a_pickle_that_does_not_verify_is_refused_and_never_unpickled(
    data: bytes, secret: bytes | None, reason: str
) -> None:
    with pytest.raises(PayloadError, match=f"refusing to unpickle a cloudpickle payload: .*{reason}"):
        decode_payload({"codec": "cloudpickle", "data": data}, secret=secret)
    assert UNPICKLED == []


def test_a_signed_but_broken_pickle_raises_payload_error() -> None:
    broken = b"not a pickle"
    data = hmac.new(SECRET, broken, hashlib.sha256).digest() + broken
    with pytest.raises(PayloadError, match="cannot unpickle a signed cloudpickle payload"):
        decode_payload({"codec": "cloudpickle", "data": data}, secret=SECRET)
