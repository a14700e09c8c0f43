"""The ``json+types`` payload codec, decoding side: tagged JSON back to the exact Python values (docs/payloads.md).

Tags are rebuilt bottom-up while the JSON is parsed (an ``object_hook``): by the time a tag is seen, its members
are decoded already. A class is taken only from the allow-list (``engine.runtime.PayloadTypes``); nothing is ever
imported by a name read from a payload.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import decimal
import enum
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Final, TypeVar

from engine.runtime import PayloadTypes

from ._errors import PayloadError
from ._typed_json import TAG, TYPED, UnresolvedValue, enum_member

__all__ = ["TypedDecoder"]

_FLOATS: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class TypedDecoder:
    """Decodes ``json+types`` documents with one allow-list.

    Args:
        types: the classes payloads may name.
        keep_unknown: a class the allow-list does not resolve becomes an ``UnresolvedValue`` instead of a
            ``PayloadError`` (for hosts that only store or show values).
    """

    def __init__(self, types: PayloadTypes, *, keep_unknown: bool = False) -> None:
        self.types = types
        self.keep_unknown = keep_unknown
        self._json = json.JSONDecoder(object_hook=self._hook, parse_constant=_refuse_constant)

    def decode(self, data: bytes) -> object:
        """The value of a ``json+types`` document.

        Raises:
            PayloadError: invalid JSON or UTF-8, an unknown or malformed tag, a class that is not allowed (unless
                ``keep_unknown``), a value its class refuses to be rebuilt from.
        """
        try:
            return self._json.decode(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise PayloadError(f"invalid {TYPED} payload: {exc}") from exc

    def _hook(self, obj: dict[str, object]) -> object:
        if TAG not in obj:
            return obj
        tag = obj[TAG]
        decode = _TAGS.get(tag) if isinstance(tag, str) else None
        if decode is None:
            raise PayloadError(f"invalid {TYPED} payload: unknown tag {tag!r} (known: {', '.join(_TAGS)})")
        return decode(self, obj)

    def resolve(self, obj: dict[str, object], kind: str, check: Callable[[type], bool]) -> type | None:
        """The allowed class an ``enum``/``dataclass``/``pydantic`` tag names; None to keep it unresolved.

        Raises:
            PayloadError: not allowed here (and not ``keep_unknown``), or not a class of that kind.
        """
        name = _text(obj, kind, "class")
        cls = self.types.resolve(name)
        if cls is None:
            if self.keep_unknown:
                return None
            raise PayloadError(
                f"the payload names the class {name} ({kind}), which is not allowed in this process: "
                f"{PayloadTypes.HOW_TO_ALLOW}"
            )
        if not check(cls):
            raise PayloadError(f"the payload names {name} as a {kind}, but that class is not one")
        return cls


def _member(obj: dict[str, object], tag: str, name: str) -> object:
    if name not in obj:
        raise PayloadError(f"invalid {TYPED} payload: the {tag!r} tag needs the member {name!r}")
    return obj[name]


def _text(obj: dict[str, object], tag: str, name: str) -> str:
    value = _member(obj, tag, name)
    if not isinstance(value, str):
        raise PayloadError(f"invalid {TYPED} payload: {tag!r}.{name} must be a string, got {type(value).__name__}")
    return value


def _list(obj: dict[str, object], tag: str, name: str) -> list[object]:
    value = _member(obj, tag, name)
    if not isinstance(value, list):
        raise PayloadError(f"invalid {TYPED} payload: {tag!r}.{name} must be an array, got {type(value).__name__}")
    return value


def _int(obj: dict[str, object], tag: str, name: str) -> int:
    value = _member(obj, tag, name)
    if type(value) is not int:
        raise PayloadError(f"invalid {TYPED} payload: {tag!r}.{name} must be an integer, got {value!r}")
    return value


def _building(tag: str, build: Callable[[], object]) -> object:
    try:
        return build()
    except PayloadError:
        raise
    except Exception as exc:  # ValueError, TypeError, pydantic's ValidationError, a user __init__/__post_init__
        raise PayloadError(
            f"invalid {TYPED} payload: cannot rebuild a {tag!r} tag: {type(exc).__name__}: {exc}"
        ) from exc


def _tuple(_: TypedDecoder, obj: dict[str, object]) -> object:
    return tuple(_list(obj, "tuple", "items"))


def _set(_: TypedDecoder, obj: dict[str, object]) -> object:
    return _building("set", lambda: set(_list(obj, "set", "items")))


def _frozenset(_: TypedDecoder, obj: dict[str, object]) -> object:
    return _building("frozenset", lambda: frozenset(_list(obj, "frozenset", "items")))


def _dict(_: TypedDecoder, obj: dict[str, object]) -> object:
    out: dict[object, object] = {}
    for pair in _list(obj, "dict", "items"):
        if not isinstance(pair, list) or len(pair) != 2:
            raise PayloadError(f"invalid {TYPED} payload: 'dict'.items must hold [key, value] pairs, got {pair!r}")
        _building("dict", lambda pair=pair: out.__setitem__(pair[0], pair[1]))  # type: ignore[misc]
    return out


def _float(_: TypedDecoder, obj: dict[str, object]) -> object:
    text = _text(obj, "float", "value")
    if text not in _FLOATS:
        raise PayloadError(f"invalid {TYPED} payload: 'float'.value must be NaN, Infinity or -Infinity, got {text!r}")
    return _FLOATS[text]


def _bytes(_: TypedDecoder, obj: dict[str, object]) -> object:
    return _base64(obj, "bytes")


def _bytearray(_: TypedDecoder, obj: dict[str, object]) -> object:
    return bytearray(_base64(obj, "bytearray"))


def _base64(obj: dict[str, object], tag: str) -> bytes:
    try:
        return base64.b64decode(_text(obj, tag, "base64"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"invalid {TYPED} payload: {tag!r}.base64 is not base64: {exc}") from exc


def _decimal(_: TypedDecoder, obj: dict[str, object]) -> object:
    text = _text(obj, "decimal", "value")
    if text != text.strip():
        raise PayloadError(f"invalid {TYPED} payload: 'decimal'.value has surrounding white space: {text!r}")
    return _building("decimal", lambda: decimal.Decimal(text))


def _uuid(_: TypedDecoder, obj: dict[str, object]) -> object:
    text = _text(obj, "uuid", "value")
    return _building("uuid", lambda: uuid.UUID(text))


def _zoned(value: datetime.datetime | datetime.time, obj: dict[str, object], tag: str) -> object:
    zone = obj.get("zone")
    fold = obj.get("fold", 0)
    if fold not in (0, 1) or type(fold) is not int:
        raise PayloadError(f"invalid {TYPED} payload: {tag!r}.fold must be 0 or 1, got {fold!r}")
    if zone is not None:
        if not isinstance(zone, str):
            raise PayloadError(f"invalid {TYPED} payload: {tag!r}.zone must be a string, got {zone!r}")
        return _building(tag, lambda: value.replace(tzinfo=zoneinfo.ZoneInfo(zone), fold=fold))
    return value.replace(fold=fold) if fold else value


_Moment = TypeVar("_Moment", datetime.datetime, datetime.time)
_SUB_SECOND_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})$")


def _exact_offset(value: _Moment, text: str) -> _Moment:
    """``value`` with the UTC offset written at the end of ``text`` when it has microseconds: CPython 3.11's
    ``fromisoformat`` reads ``+00:00:00.000001`` as UTC (any offset under a second is lost)."""
    found = _SUB_SECOND_OFFSET.search(text)
    if found is None or value.tzinfo is None:
        return value
    sign, hours, minutes, seconds, micros = found.groups()
    offset = datetime.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=int(micros))
    return value.replace(tzinfo=datetime.timezone(-offset if sign == "-" else offset))


def _datetime(_: TypedDecoder, obj: dict[str, object]) -> object:
    text = _text(obj, "datetime", "value")
    value = _building("datetime", lambda: datetime.datetime.fromisoformat(text))
    assert isinstance(value, datetime.datetime)
    return _zoned(_exact_offset(value, text), obj, "datetime")


def _date(_: TypedDecoder, obj: dict[str, object]) -> object:
    text = _text(obj, "date", "value")
    return _building("date", lambda: datetime.date.fromisoformat(text))


def _time(_: TypedDecoder, obj: dict[str, object]) -> object:
    text = _text(obj, "time", "value")
    value = _building("time", lambda: datetime.time.fromisoformat(text))
    assert isinstance(value, datetime.time)
    return _zoned(_exact_offset(value, text), obj, "time")


def _timedelta(_: TypedDecoder, obj: dict[str, object]) -> object:
    days, seconds, micros = (_int(obj, "timedelta", n) for n in ("days", "seconds", "microseconds"))
    return _building("timedelta", lambda: datetime.timedelta(days=days, seconds=seconds, microseconds=micros))


def _enum(decoder: TypedDecoder, obj: dict[str, object]) -> object:
    name = _text(obj, "enum", "name")
    cls = decoder.resolve(obj, "enum", lambda c: issubclass(c, enum.Enum))
    if cls is None:
        return UnresolvedValue("enum", _text(obj, "enum", "class"), name)
    member = enum_member(cls, name)
    if member is None:
        raise PayloadError(f"the payload names a member {name!r} that {PayloadTypes.name_of(cls)} does not have")
    return member


def _dataclass(decoder: TypedDecoder, obj: dict[str, object]) -> object:
    fields = _member(obj, "dataclass", "fields")
    if not isinstance(fields, dict):
        raise PayloadError(f"invalid {TYPED} payload: 'dataclass'.fields must be an object, got {fields!r}")
    cls = decoder.resolve(obj, "dataclass", dataclasses.is_dataclass)
    if cls is None:
        return UnresolvedValue("dataclass", _text(obj, "dataclass", "class"), fields)
    return _building("dataclass", lambda: _rebuild(cls, fields))


def _rebuild(cls: type, fields: dict[str, object]) -> object:
    """``cls(**init fields)``, then the fields that are not ``__init__`` arguments set as they were recorded;
    names the class no longer has are ignored (missing ones take the class's defaults)."""
    declared = dataclasses.fields(cls)
    value = cls(**{f.name: fields[f.name] for f in declared if f.init and f.name in fields})
    for field in declared:
        if not field.init and field.name in fields:
            object.__setattr__(value, field.name, fields[field.name])  # frozen dataclasses too
    return value


def _pydantic(decoder: TypedDecoder, obj: dict[str, object]) -> object:
    data = _member(obj, "pydantic", "data")
    cls = decoder.resolve(obj, "pydantic", lambda c: callable(getattr(c, "model_validate", None)))
    if cls is None:
        return UnresolvedValue("pydantic", _text(obj, "pydantic", "class"), data)
    return _building("pydantic", lambda: cls.model_validate(data))  # type: ignore[attr-defined]


_TAGS: Final[dict[str, Callable[[TypedDecoder, dict[str, object]], object]]] = {
    "tuple": _tuple,
    "set": _set,
    "frozenset": _frozenset,
    "dict": _dict,
    "float": _float,
    "bytes": _bytes,
    "bytearray": _bytearray,
    "decimal": _decimal,
    "uuid": _uuid,
    "datetime": _datetime,
    "date": _date,
    "time": _time,
    "timedelta": _timedelta,
    "enum": _enum,
    "dataclass": _dataclass,
    "pydantic": _pydantic,
}
