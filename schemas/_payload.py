"""Payload codecs: how argument and result values become the bytes of an Avro ``Payload`` record.

``json`` (the default) is compact UTF-8 JSON that any language can read. ``cloudpickle`` carries any
Python value, but unpickling runs code chosen by whoever wrote the bytes, so a pickle is only ever
written signed and only ever read after its signature verifies: ``data`` is
HMAC-SHA256(secret, pickle) (32 bytes) followed by the pickle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Mapping
from typing import Final

from ._errors import PayloadError

__all__ = ["CLOUDPICKLE", "JSON", "decode_payload", "encode_payload"]

JSON: Final = "json"
"""Name of the JSON payload codec (the default)."""

CLOUDPICKLE: Final = "cloudpickle"
"""Name of the signed cloudpickle payload codec (needs a secret on both sides)."""

_MAC_SIZE: Final = hashlib.sha256().digest_size
_CLOUDPICKLE_HINT: Final = "use codec='cloudpickle' with a secret (KFLOW_SECRET) for arbitrary Python values"


class _NotJsonable(Exception):
    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


def _refuse_object(value: object) -> object:
    raise _NotJsonable(value)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.dumps/json.loads with options would build a new encoder/decoder per call.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse_object)
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def encode_payload(value: object, codec: str = JSON, secret: bytes | None = None) -> dict[str, object]:
    """Encode `value` as an Avro ``Payload`` record: ``{"codec": codec, "data": bytes}``.

    Args:
        value: the value. With ``json`` it must be JSON-representable (dicts with string keys, lists,
            tuples, strings, finite numbers, booleans, None); tuples come back as lists.
        codec: ``"json"`` (default) or ``"cloudpickle"``.
        secret: the HMAC key; required for ``cloudpickle``, ignored for ``json``.

    Raises:
        PayloadError: unknown codec; a value JSON cannot represent (the message names its type);
            ``cloudpickle`` without a secret; a value cloudpickle cannot pickle.
    """
    if codec == JSON:
        data = _json_encode(value)
    elif codec == CLOUDPICKLE:
        key = _require_secret(secret, "sign a cloudpickle payload")
        pickled = _pickle(value)
        data = hmac.new(key, pickled, hashlib.sha256).digest() + pickled
    else:
        raise PayloadError(f"unknown payload codec {codec!r} (known: {JSON!r}, {CLOUDPICKLE!r})")
    return {"codec": codec, "data": data}


def decode_payload(payload: Mapping[str, object], secret: bytes | None = None) -> object:
    """Decode an Avro ``Payload`` record back into the value.

    A ``cloudpickle`` payload is unpickled only after its HMAC-SHA256 signature verifies with
    `secret`; otherwise it is refused without being unpickled.

    Args:
        payload: a mapping with ``codec`` (str) and ``data`` (bytes), as decoded from a record.
        secret: the HMAC key; required for ``cloudpickle`` payloads, ignored for ``json``.

    Raises:
        PayloadError: not a payload, unknown codec, invalid JSON, or a pickle refused because no
            secret is configured, it is shorter than its signature, or its signature does not verify.
    """
    try:
        codec = payload["codec"]
        data = payload["data"]
    except (KeyError, TypeError) as exc:
        raise PayloadError(f"not a Payload record (needs 'codec' and 'data'): {exc!r}") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload data must be bytes, got {type(data).__name__}")
    if codec == JSON:
        return _json_decode(bytes(data))
    if codec == CLOUDPICKLE:
        return _unpickle(_verified(bytes(data), secret))
    raise PayloadError(f"unknown payload codec {codec!r} (known: {JSON!r}, {CLOUDPICKLE!r})")


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _json_encode(value: object) -> bytes:
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except _NotJsonable as exc:
        raise PayloadError(
            f"a value of type {_type_name(exc.value)} is not JSON-serializable; {_CLOUDPICKLE_HINT}"
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:  # bad keys, NaN, cycles, lone surrogates
        raise PayloadError(f"value is not JSON-serializable: {exc}; {_CLOUDPICKLE_HINT}") from exc


def _json_decode(data: bytes) -> object:
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise PayloadError(f"invalid json payload: {exc}") from exc


def _require_secret(secret: bytes | None, purpose: str) -> bytes:
    if secret is None:
        raise PayloadError(f"refusing to {purpose}: no secret configured (set KFLOW_SECRET)")
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise PayloadError(f"refusing to {purpose}: the secret must be non-empty bytes")
    return bytes(secret)


def _verified(data: bytes, secret: bytes | None) -> bytes:
    """Return the pickle inside `data` if its signature verifies; never look inside otherwise."""
    key = _require_secret(secret, "unpickle a cloudpickle payload")
    if len(data) < _MAC_SIZE:
        raise PayloadError(
            f"refusing to unpickle a cloudpickle payload: {len(data)} bytes is shorter than "
            f"its {_MAC_SIZE}-byte HMAC-SHA256 signature"
        )
    mac, pickled = data[:_MAC_SIZE], data[_MAC_SIZE:]
    # Invariant: nothing is unpickled unless it was signed with our secret (constant-time compare).
    if not hmac.compare_digest(mac, hmac.new(key, pickled, hashlib.sha256).digest()):
        raise PayloadError(
            "refusing to unpickle a cloudpickle payload: its HMAC-SHA256 signature does not verify "
            "(unsigned, tampered with, or signed with another secret)"
        )
    return pickled


def _pickle(value: object) -> bytes:
    import cloudpickle  # type: ignore[import-untyped,unused-ignore]  # imported only when the codec is used

    try:
        return bytes(cloudpickle.dumps(value))
    except Exception as exc:
        raise PayloadError(f"cannot pickle a value of type {_type_name(value)}: {exc}") from exc


def _unpickle(pickled: bytes) -> object:
    try:
        # cloudpickle writes standard pickles; pickle imports cloudpickle itself if one refers to it.
        return pickle.loads(pickled)
    except Exception as exc:
        raise PayloadError(f"cannot unpickle a signed cloudpickle payload: {type(exc).__name__}: {exc}") from exc
