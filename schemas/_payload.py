"""Payload codecs: how argument and result values become the bytes of an Avro ``Payload`` record.

The JSON codecs (the default; spec: ``docs/payloads.md``) are language-neutral: a value plain JSON carries exactly
is written as compact UTF-8 JSON under the codec name ``json``, byte for byte as it always was; any other value
they carry (tuples, sets, datetimes, Decimals, UUIDs, bytes, Enum members, dataclasses, pydantic models, dicts with
non-string keys, NaN, …) makes the payload a ``json+types`` document, tagged JSON whose classes are resolved only
from an allow-list (``engine.runtime.PayloadTypes``). ``cloudpickle`` carries any Python value, but unpickling
runs code chosen by whoever wrote the bytes, so a pickle is only ever written signed and only ever read after its
signature verifies: ``data`` is a 32-byte HMAC-SHA256 followed by the pickle. The signature binds the payload to
where it was written: its key is derived from the secret for payloads alone (``schemas._macs.derive_key``) and it
covers the owner of the record (its run id, or ``schedule:{id}``) and the field (``args``, ``result``, …) before
the pickle, so a signed payload copied into another run's record or another field does not verify.

Payloads signed before that binding (HMAC-SHA256(secret, pickle), with the secret itself as the key) are still
read in this release, with a warning logged once per process, so histories written before an upgrade replay; the
next release refuses them (docs/payloads.md, docs/security.md).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import pickle
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from engine.runtime import PayloadTypes

from ._errors import PayloadError
from ._macs import derive_key, message
from ._typed_json import TYPED, call_tree, is_plain, surrogate_path, tag_tree, type_name
from ._typed_json_decode import TypedDecoder

__all__ = [
    "CLOUDPICKLE",
    "JSON",
    "TYPED",
    "check_payload",
    "decode_payload",
    "decode_with",
    "encode_call_payload",
    "encode_payload",
]

JSON: Final = "json"
"""Name of the plain JSON payload codec; as an encoding choice, the JSON codecs (``json`` or ``json+types``)."""

CLOUDPICKLE: Final = "cloudpickle"
"""Name of the signed cloudpickle payload codec (needs a secret on both sides)."""

log = logging.getLogger(__name__)

_MAC_SIZE: Final = hashlib.sha256().digest_size
_legacy_seen = False  # a payload signed without binding was read (warned once per process)
_CLOUDPICKLE_HINT: Final = "use codec='cloudpickle' with a secret (KFLOW_SECRET) for arbitrary Python values"
_KNOWN: Final = f"known: {JSON!r}, {TYPED!r}, {CLOUDPICKLE!r}"


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


def encode_payload(
    value: object,
    codec: str = JSON,
    secret: bytes | None = None,
    *,
    types: PayloadTypes | None = None,
    path: str = "$",
    run_id: str = "",
    field: str = "",
) -> dict[str, object]:
    """Encode `value` as an Avro ``Payload`` record: ``{"codec": name, "data": bytes}``.

    Args:
        value: the value.
        codec: ``"json"`` (default: the JSON codecs, which write ``json`` for a value plain JSON carries exactly
            and ``json+types`` for any other value they carry; see docs/payloads.md) or ``"cloudpickle"``.
        secret: the HMAC key; required for ``cloudpickle``, ignored otherwise.
        types: the classes (Enum, dataclass, pydantic model) values may have; default: those registered with
            ``engine.payload_type``.
        path: where the value sits, for messages (``$.result``).
        run_id / field: the owner of the record the payload goes into (its run id, or ``schedule:{id}``) and its
            field; a cloudpickle signature covers both, and only decodes with the same two.

    Raises:
        PayloadError: unknown codec; a value the JSON codecs cannot carry (the message starts with its path and
            names its type: ``$.result["items"][2]: object …``); ``cloudpickle`` without a secret; a value
            cloudpickle cannot pickle.
    """
    json_data = functools.partial(json_document, value, types or PayloadTypes(), path)
    return _encode(codec, secret, value, json_data, (run_id, field))


def encode_call_payload(
    args: Iterable[object],
    kwargs: Mapping[str, object],
    codec: str = JSON,
    secret: bytes | None = None,
    *,
    types: PayloadTypes | None = None,
    run_id: str = "",
    field: str = "args",
) -> dict[str, object]:
    """The ``Payload`` of call arguments, ``{"args": [...], "kwargs": {...}}``; paths in messages are ``$.args[i]``
    and ``$.kwargs["name"]``. Raises as ``encode_payload``."""
    args = list(args)
    call = {"args": args, "kwargs": kwargs}
    json_data = functools.partial(call_document, args, kwargs, types or PayloadTypes())
    return _encode(codec, secret, call, json_data, (run_id, field))


def check_payload(value: object, path: str = "$", *, types: PayloadTypes | None = None) -> None:
    """Raise the ``PayloadError`` ``encode_payload(value, types=types, path=path)`` would raise, if any."""
    json_document(value, types or PayloadTypes(), path)


def _encode(
    codec: str,
    secret: bytes | None,
    value: object,
    json_data: Callable[[], tuple[str, bytes]],
    binding: tuple[str, str],
) -> dict[str, object]:
    if codec == JSON:
        name, data = json_data()
    elif codec == CLOUDPICKLE:
        key = _require_secret(secret, "sign a cloudpickle payload")
        pickled = _pickle(value)
        name, data = codec, _bound_mac(key, binding, pickled) + pickled
    else:
        raise PayloadError(f"unknown payload codec {codec!r} ({_KNOWN})")
    return {"codec": name, "data": data}


def json_document(value: object, types: PayloadTypes, path: str) -> tuple[str, bytes]:
    """(codec name, data) of ``value`` under the JSON codecs."""
    if is_plain(value):
        return JSON, _json_text(value, lambda: surrogate_path(value, path) or path)
    return TYPED, _json_text(tag_tree(value, path, types), lambda: surrogate_path(value, path) or path)


def call_document(args: list[object], kwargs: Mapping[str, object], types: PayloadTypes) -> tuple[str, bytes]:
    """(codec name, data) of call arguments under the JSON codecs."""
    call = {"args": args, "kwargs": kwargs}

    def where() -> str:
        found = surrogate_path(args, "$.args") or surrogate_path(dict(kwargs), "$.kwargs")
        return found or "$"

    if is_plain(call):
        return JSON, _json_text(call, where)
    return TYPED, _json_text(call_tree(args, kwargs, types), where)


def decode_payload(
    payload: Mapping[str, object],
    secret: bytes | None = None,
    *,
    types: PayloadTypes | None = None,
    keep_unknown: bool = False,
    run_id: str = "",
    field: str = "",
) -> object:
    """Decode an Avro ``Payload`` record back into the value.

    A ``cloudpickle`` payload is unpickled only after its HMAC-SHA256 signature verifies with
    `secret` for ``run_id`` and ``field`` (those it was encoded with); otherwise it is refused without being
    unpickled. A ``json+types`` payload rebuilds a class only
    when ``types`` allows it (nothing is imported by a name read from a payload).

    Args:
        payload: a mapping with ``codec`` (str) and ``data`` (bytes), as decoded from a record.
        secret: the HMAC key; required for ``cloudpickle`` payloads, ignored otherwise.
        types: the classes a ``json+types`` payload may name; default: those registered with
            ``engine.payload_type``.
        keep_unknown: a class ``types`` does not allow decodes to a ``schemas.UnresolvedValue`` instead of
            raising (for hosts that only store or show values).
        run_id / field: the owner and field of the record the payload was read from.

    Raises:
        PayloadError: not a payload, unknown codec, invalid JSON, an unknown or malformed tag, a class that is not
            allowed, or a pickle refused because no secret is configured, it is shorter than its signature, or its
            signature does not verify.
    """
    typed = TypedDecoder(types or PayloadTypes(), keep_unknown=keep_unknown)
    return decode_with(payload, secret, typed, run_id=run_id, field=field)


def decode_with(
    payload: Mapping[str, object], secret: bytes | None, typed: TypedDecoder, *, run_id: str = "", field: str = ""
) -> object:
    """``decode_payload`` with a ready ``json+types`` decoder."""
    try:
        codec = payload["codec"]
        data = payload["data"]
    except (KeyError, TypeError) as exc:
        raise PayloadError(f"not a Payload record (needs 'codec' and 'data'): {exc!r}") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload data must be bytes, got {type(data).__name__}")
    if codec == JSON:
        return _json_decode(bytes(data))
    if codec == TYPED:
        return typed.decode(bytes(data))
    if codec == CLOUDPICKLE:
        return _unpickle(_verified(bytes(data), secret, (run_id, field)))
    raise PayloadError(f"unknown payload codec {codec!r} ({_KNOWN})")


def _json_text(tree: object, where: Callable[[], str]) -> bytes:
    try:
        return _ENCODER.encode(tree).encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(
            f"{where()}: str holds a lone surrogate, which UTF-8 cannot encode; {_CLOUDPICKLE_HINT}"
        ) from None
    except _NotJsonable as exc:  # unreachable: the plain check and the typed walk let no such value through
        raise PayloadError(f"{where()}: {type_name(exc.value)} cannot be encoded; {_CLOUDPICKLE_HINT}") from None
    except (TypeError, ValueError, RecursionError) as exc:  # an int too long to write, nesting too deep
        raise PayloadError(f"{where()}: cannot be encoded: {exc}; {_CLOUDPICKLE_HINT}") from exc


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


@functools.lru_cache(maxsize=8)
def _payload_key(secret: bytes) -> bytes:
    return derive_key(secret, "payload:cloudpickle")


def _bound_mac(secret: bytes, binding: tuple[str, str], pickled: bytes) -> bytes:
    """HMAC-SHA256 under the payload key of (owner, field) then the pickle."""
    mac = hmac.new(_payload_key(secret), message(*binding), hashlib.sha256)
    mac.update(pickled)
    return mac.digest()


def _verified(data: bytes, secret: bytes | None, binding: tuple[str, str]) -> bytes:
    """Return the pickle inside `data` if its signature verifies; never look inside otherwise."""
    key = _require_secret(secret, "unpickle a cloudpickle payload")
    if len(data) < _MAC_SIZE:
        raise PayloadError(
            f"refusing to unpickle a cloudpickle payload: {len(data)} bytes is shorter than "
            f"its {_MAC_SIZE}-byte HMAC-SHA256 signature"
        )
    mac, pickled = data[:_MAC_SIZE], data[_MAC_SIZE:]
    # Invariant: nothing is unpickled unless it was signed with our secret (constant-time compare).
    if hmac.compare_digest(mac, _bound_mac(key, binding, pickled)):
        return pickled
    if hmac.compare_digest(mac, hmac.new(key, pickled, hashlib.sha256).digest()):
        _legacy_read()  # signed before payloads were bound to their record: read for one more release
        return pickled
    owner, field = binding
    raise PayloadError(
        "refusing to unpickle a cloudpickle payload: its HMAC-SHA256 signature does not verify for "
        f"{field or 'this field'} of {owner or 'this record'} (unsigned, tampered with, signed with another "
        "secret, or copied from another run or field)"
    )


def _legacy_read() -> None:
    global _legacy_seen
    if not _legacy_seen:
        _legacy_seen = True
        log.warning(
            "read a cloudpickle payload signed in the format before payloads were bound to their run and field; "
            "such payloads are accepted in this release only (docs/payloads.md, 'cloudpickle')"
        )


def _pickle(value: object) -> bytes:
    import cloudpickle  # type: ignore[import-untyped,unused-ignore]  # imported only when the codec is used

    try:
        return bytes(cloudpickle.dumps(value))
    except Exception as exc:
        raise PayloadError(f"cannot pickle a value of type {type_name(value)}: {exc}") from exc


def _unpickle(pickled: bytes) -> object:
    try:
        # cloudpickle writes standard pickles; pickle imports cloudpickle itself if one refers to it.
        return pickle.loads(pickled)
    except Exception as exc:
        raise PayloadError(f"cannot unpickle a signed cloudpickle payload: {type(exc).__name__}: {exc}") from exc
