"""Engine records (frozen dataclasses) to Avro single-object bytes and back.

The engine's record classes carry decoded Python values where the Avro schema has a ``Payload``
(call arguments as ``CallArgs``, results and hook payloads as plain objects) and an ``ErrorInfo``
dataclass where the schema has the ``ErrorInfo`` record. Field names are identical on both sides, so the
mapping is computed once per record type from the schema and the dataclass fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Final, cast

from engine import runtime
from engine.runtime import CallArgs, ErrorInfo, PayloadCheck, PayloadTypes, schedule_key

from ._codec import Codec
from ._errors import SchemaError
from ._payload import JSON, call_document, decode_with, encode_call_payload, encode_payload, json_document
from ._typed_json_decode import TypedDecoder

__all__ = ["RecordCodec"]

_RECORD_TYPES: Final[tuple[type, ...]] = (
    runtime.StartWorkflow,
    runtime.CancelWorkflow,
    runtime.ResumeHook,
    runtime.StepResult,
    runtime.TimerFired,
    runtime.RunFinished,
    runtime.ForgetRun,
    runtime.ScheduleCommand,
    runtime.ScheduleState,
    runtime.ExecuteStep,
    runtime.StartTimer,
    runtime.CancelTimer,
    *runtime.HISTORY_EVENT_TYPES,
)

# Converters take the value and the record's owner (its run id, or ``schedule:{id}``): a cloudpickle payload's
# signature binds the owner and the field (``schemas._payload``); every other converter ignores the owner.
_Encode = Callable[[object, str], object]
_Decode = Callable[[object, str], object]


class RecordCodec:
    """Encodes engine records to Avro single-object bytes and decodes them back to engine records.

    Args:
        codec: the schema codec (default: the package's schemas).
        payload_codec: ``"json"`` (default: the JSON codecs, ``json`` or ``json+types`` per value; see
            docs/payloads.md) or ``"cloudpickle"`` for values inside ``Payload`` fields.
        secret: HMAC key; required to write and to read cloudpickle payloads.
        types: the classes (Enum, dataclass, pydantic model) payload values may have, written and read; default:
            those registered with ``engine.payload_type``. Hosts pass their registry's (``Registry.payload_types``).
        keep_unknown: decode a class ``types`` does not allow to a ``schemas.UnresolvedValue`` instead of
            failing (hosts that only store or show values: the history materializer).

    Raises (from encode/decode):
        SchemaError: bytes that are not a kflow record, a value a payload codec cannot carry
            (``PayloadError``), or a record type the engine does not define.
    """

    def __init__(
        self,
        codec: Codec | None = None,
        *,
        payload_codec: str = JSON,
        secret: bytes | None = None,
        types: PayloadTypes | None = None,
        keep_unknown: bool = False,
    ) -> None:
        self.codec = codec or Codec()
        self._payload_codec = payload_codec
        self._secret = secret
        self.types = types or PayloadTypes()
        self.keep_unknown = keep_unknown
        self._typed = TypedDecoder(self.types, keep_unknown=keep_unknown)
        self._by_name: dict[str, tuple[type, tuple[tuple[str, _Encode, _Decode], ...]]] = {}
        for cls in _RECORD_TYPES:
            self._by_name[cls.__name__] = (cls, self._plan(cls))

    @property
    def payload_check(self) -> PayloadCheck | None:
        """What the engine calls to refuse, where they are produced, values this codec cannot carry
        (``Run.start(..., payload_check=...)``); None for cloudpickle (it is not checked ahead)."""
        return self.check_payload if self._payload_codec == JSON else None

    def check_payload(self, value: object, field: str) -> None:
        """Raise the ``PayloadError`` encoding ``value`` as the payload field ``field`` would raise, if any."""
        if isinstance(value, CallArgs):
            call_document(list(value.args), value.kwargs, self.types)
        else:
            json_document(value, self.types, f"$.{field}")

    def keeping_unknown(self) -> RecordCodec:
        """This codec, but decoding classes it does not allow to ``schemas.UnresolvedValue`` (``keep_unknown``)."""
        if self.keep_unknown:
            return self
        return RecordCodec(
            self.codec, payload_codec=self._payload_codec, secret=self._secret, types=self.types, keep_unknown=True
        )

    def encode(self, record: object) -> bytes:
        """Single-object encoded bytes of an engine record."""
        name = type(record).__name__
        entry = self._by_name.get(name)
        if entry is None:
            raise SchemaError(f"{name} is not a kflow record type")
        _, plan = entry
        owner = _owner(getattr(record, "run_id", None), getattr(record, "schedule_id", None))
        return self.codec.encode(name, {field: enc(getattr(record, field), owner) for field, enc, _ in plan})

    def decode(self, data: bytes) -> object:
        """The engine record encoded in ``data``."""
        decoded = self.codec.decode(data)
        entry = self._by_name.get(decoded.name)
        if entry is None:
            raise SchemaError(f"{decoded.name} records have no engine type")
        cls, plan = entry
        record = decoded.record
        owner = _owner(record.get("run_id"), record.get("schedule_id"))
        try:
            return cls(**{field: dec(record[field], owner) for field, _, dec in plan})
        except (TypeError, KeyError, ValueError) as exc:
            raise SchemaError(f"{decoded.name}: cannot build the engine record: {exc}") from exc

    def _plan(self, cls: type) -> tuple[tuple[str, _Encode, _Decode], ...]:
        schema_fields = _fields(self.codec.schema(cls.__name__))
        fields = {str(f["name"]): f["type"] for f in schema_fields}
        names = [f.name for f in dataclasses.fields(cls)]
        # A schema may be ahead of the code (a field added with a default the engine does not use yet): such
        # fields are written with their default and dropped on reading. Every engine field must be in the schema.
        ahead = {str(f["name"]) for f in schema_fields if "default" in f}
        if set(names) - set(fields) or set(fields) - set(names) - ahead:
            raise SchemaError(
                f"{cls.__name__}: engine fields {sorted(names)} differ from the schema's {sorted(fields)}"
            )
        return tuple((name, *self._converters(name, fields[name])) for name in names)

    def _converters(self, name: str, avro_type: object) -> tuple[_Encode, _Decode]:
        if isinstance(avro_type, dict) and avro_type.get("type") == "array":
            return _as_list, _as_tuple  # engine records hold tuples (frozen); Avro readers give lists
        kind = _named_kind(avro_type)
        nullable = isinstance(avro_type, list)
        enc: _Encode
        dec: _Decode
        if kind == "Payload" and name == "args":
            enc, dec = self._args_encoder, self._args_decoder
        elif kind == "Payload":
            enc, dec = self._payload_encoder(name), self._payload_decoder(name)
        elif kind == "ErrorInfo":
            enc, dec = _error_to_avro, _error_from_avro
        else:
            return _same, _same
        if nullable:
            return _nullable(enc), _nullable(dec)
        return enc, dec

    def _payload_encoder(self, field: str) -> _Encode:
        path = f"$.{field}"

        def encode(value: object, owner: str) -> object:
            codec, secret, types = self._payload_codec, self._secret, self.types
            return encode_payload(value, codec, secret, types=types, path=path, run_id=owner, field=field)

        return encode

    def _payload_decoder(self, field: str) -> _Decode:
        def decode(value: object, owner: str) -> object:
            return decode_with(_mapping(value), self._secret, self._typed, run_id=owner, field=field)

        return decode

    def _args_encoder(self, value: object, owner: str) -> object:
        if not isinstance(value, CallArgs):
            raise SchemaError(f"args must be CallArgs, got {type(value).__name__}")
        codec, secret = self._payload_codec, self._secret
        return encode_call_payload(value.args, value.kwargs, codec, secret, types=self.types, run_id=owner)

    def _args_decoder(self, value: object, owner: str) -> object:
        call = decode_with(_mapping(value), self._secret, self._typed, run_id=owner, field="args")
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("args"), list)
            or not isinstance(call.get("kwargs"), dict)
        ):
            raise SchemaError("args payload must hold {'args': [...], 'kwargs': {...}}")
        return CallArgs(tuple(call["args"]), dict(call["kwargs"]))


def _fields(schema: Mapping[str, object]) -> list[dict[str, object]]:
    fields = schema["fields"]
    assert isinstance(fields, list)
    return fields


def _named_kind(avro_type: object) -> str | None:
    """``"Payload"`` / ``"ErrorInfo"`` when the type is (or nullably is) that named record."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    for branch in branches:
        if isinstance(branch, dict) and branch.get("type") == "record":
            return str(branch["name"]).rpartition(".")[2]
        if isinstance(branch, str) and branch.rpartition(".")[2] in ("Payload", "ErrorInfo"):
            return branch.rpartition(".")[2]
    return None


def _owner(run_id: object, schedule_id: object) -> str:
    """Whose record it is: its run id, else its schedule's key (``ScheduleCommand``, ``ScheduleState``)."""
    if isinstance(run_id, str):
        return run_id
    return schedule_key(schedule_id) if isinstance(schedule_id, str) else ""


def _same(value: object, owner: str = "") -> object:
    return value


def _as_list(value: object, owner: str = "") -> object:
    return list(cast("Iterable[object]", value))


def _as_tuple(value: object, owner: str = "") -> object:
    return tuple(cast("Iterable[object]", value))


def _nullable(convert: Callable[[object, str], object]) -> Callable[[object, str], object]:
    def convert_or_none(value: object, owner: str) -> object:
        return None if value is None else convert(value, owner)

    return convert_or_none


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise SchemaError(f"expected a Payload record, got {type(value).__name__}")
    return value


def _error_to_avro(value: object, owner: str = "") -> object:
    if not isinstance(value, ErrorInfo):
        raise SchemaError(f"error must be ErrorInfo, got {type(value).__name__}")
    return {
        "type": value.type,
        "message": value.message,
        "traceback": value.traceback,
        "retryable": value.retryable,
        "retry_after_ms": value.retry_after_ms,
    }


def _error_from_avro(value: object, owner: str = "") -> object:
    record = _mapping(value)
    traceback, retry_after_ms = record["traceback"], record.get("retry_after_ms")
    return ErrorInfo(
        type=str(record["type"]),
        message=str(record["message"]),
        traceback=traceback if isinstance(traceback, str) else None,
        retryable=bool(record["retryable"]),
        retry_after_ms=retry_after_ms if isinstance(retry_after_ms, int) else None,
    )
