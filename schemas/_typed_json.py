"""The ``json+types`` payload codec, encoding side: Python values to tagged JSON (spec: docs/payloads.md).

A value that plain JSON carries exactly (``is_plain``) is written by the ``json`` codec, byte for byte as before
this codec existed. Anything else — a tuple, a set, a datetime, a Decimal, an Enum member, a dataclass, a dict
with non-string keys, a NaN — makes the whole payload a ``json+types`` document: JSON in which an object with a
``"$kflow"`` member is a *tag* standing for one typed value. Decoding is in ``schemas._typed_json_decode``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import math
import sys
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from engine.runtime import PayloadTypes

from ._errors import PayloadError

__all__ = ["TAG", "TYPED", "UnresolvedValue", "is_plain", "tag_tree"]

TAG: Final = "$kflow"
"""The member that makes a JSON object a tag in a ``json+types`` document."""

TYPED: Final = "json+types"
"""Name of the typed JSON payload codec."""

_NON_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}
_HINT: Final = "the JSON payload codecs carry the types docs/payloads.md lists; the cloudpickle codec any Python value"


@dataclasses.dataclass(frozen=True, slots=True)
class UnresolvedValue:
    """A typed value whose class this process does not allow, kept as it was written (hosts that only store or
    show values, such as the history materializer, decode this way instead of refusing the payload).

    Encoded again, it is written exactly as it was read.

    Attributes:
        kind: the tag: ``"enum"``, ``"dataclass"`` or ``"pydantic"``.
        class_name: the class the payload names, ``"module:qualname"``.
        data: the member name (enum), the decoded fields (dataclass) or the decoded data (pydantic).
    """

    kind: str
    class_name: str
    data: object

    def __repr__(self) -> str:
        return f"<{self.kind} {self.class_name} {self.data!r}>"


def is_plain(value: object) -> bool:
    """Whether plain JSON carries ``value`` exactly: dicts with string keys, lists, strings, ints, finite floats,
    booleans and None, nested (subclasses of these built-ins included, Enum members excluded)."""
    try:
        return _plain(value)
    except RecursionError:  # nested too deeply (or a cycle): the typed walk reports it with its path
        return False


def _plain(value: object) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is list:
        return all(_plain(item) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(_plain_key(k) and _plain(v) for k, v in value.items())  # type: ignore[attr-defined]
    if isinstance(value, enum.Enum) or not isinstance(value, (str, int, float, list, dict)):
        return False
    return isinstance(value, (str, int)) or _plain(_builtin(value))


def _plain_key(key: object) -> bool:
    return type(key) is str or (isinstance(key, str) and not isinstance(key, enum.Enum))


def _builtin(value: object) -> object:
    """A subclass instance of a JSON built-in as that built-in (``json`` writes it so too)."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def tag_tree(value: object, path: str, types: PayloadTypes) -> object:
    """The JSON-compatible tree of the ``json+types`` document for ``value``.

    Raises:
        PayloadError: a value it cannot carry; the message starts with its path (``path`` is the root's, such as
            ``$.result``) and its type: ``$.result["items"][2]: object …``.
    """
    walker = _Walker(types)
    try:
        return walker.tree(value, path)
    except RecursionError:
        raise PayloadError(f"{path}: nested too deeply to encode") from None


def call_tree(args: Iterable[object], kwargs: Mapping[str, object], types: PayloadTypes) -> object:
    """The tree of call arguments, ``{"args": [...], "kwargs": {...}}``, with paths ``$.args[i]``, ``$.kwargs["k"]``."""
    walker = _Walker(types)
    try:
        items = [walker.tree(arg, f"$.args[{i}]") for i, arg in enumerate(args)]
        return {"args": items, "kwargs": walker.mapping(kwargs, "$.kwargs")}
    except RecursionError:
        raise PayloadError("$.args: nested too deeply to encode") from None


def type_name(value: object) -> str:
    """``object``, ``datetime.datetime``, ``myapp.models.Order``: the type of ``value`` for messages."""
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def surrogate_path(value: object, path: str) -> str | None:
    """The path of the first string (or key) in ``value`` that UTF-8 cannot encode (a lone surrogate), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items: Iterable[tuple[str, object]] = ()
    if isinstance(value, Mapping):
        items = [(f"{path}<key {i}>", k) for i, k in enumerate(value)]
        items += [(f"{path}[{_label(k)}]", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f"{path}.{f.name}", getattr(value, f.name, None)) for f in dataclasses.fields(value)]
    for where, item in items:
        found = surrogate_path(item, where)
        if found is not None:
            return found
    return None


class _Walker:
    """One encoding walk: the allow-list, and the containers on the current path (to refuse a reference cycle)."""

    def __init__(self, types: PayloadTypes) -> None:
        self.types = types
        self.active: set[int] = set()

    def tree(self, value: object, path: str) -> object:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            return value if math.isfinite(value) else _float_tag(value)  # type: ignore[arg-type]
        if kind is list:
            return self.container(value, path, lambda: self.items(value, path))  # type: ignore[arg-type]
        if kind is dict:
            return self.container(value, path, lambda: self.mapping(value, path))  # type: ignore[arg-type]
        if kind is tuple:
            return self.container(value, path, lambda: {TAG: "tuple", "items": self.items(value, path)})  # type: ignore[arg-type]
        return self.other(value, path)

    def container(self, value: object, path: str, build: Callable[[], object]) -> object:
        key = id(value)
        if key in self.active:
            raise PayloadError(f"{path}: {type_name(value)} contains itself (a reference cycle); {_HINT}")
        self.active.add(key)
        try:
            return build()
        finally:
            self.active.discard(key)

    def items(self, values: Iterable[object], path: str) -> list[object]:
        return [self.tree(item, f"{path}[{i}]") for i, item in enumerate(values)]

    def mapping(self, value: Mapping[Any, object], path: str) -> object:
        if TAG not in value and all(_plain_key(k) for k in value):
            return {k: self.tree(v, f"{path}[{_label(k)}]") for k, v in value.items()}
        pairs = [
            [self.tree(k, f"{path}<key {i}>"), self.tree(v, f"{path}[{_label(k)}]")]
            for i, (k, v) in enumerate(value.items())
        ]
        return {TAG: "dict", "items": pairs}

    def fields(self, values: Mapping[str, object], path: str) -> dict[str, object]:
        return {name: self.tree(item, f"{path}.{name}") for name, item in values.items()}

    def other(self, value: object, path: str) -> object:
        if isinstance(value, enum.Enum):
            return self.enum_tag(value, path)
        if isinstance(value, datetime.datetime):
            return _moment_tag("datetime", datetime.datetime.isoformat(value), value.tzinfo, value.fold)
        if isinstance(value, datetime.date):
            return {TAG: "date", "value": datetime.date.isoformat(value)}
        if isinstance(value, datetime.time):
            return _moment_tag("time", datetime.time.isoformat(value), value.tzinfo, value.fold)
        if isinstance(value, datetime.timedelta):
            return {TAG: "timedelta", "days": value.days, "seconds": value.seconds, "microseconds": value.microseconds}
        if isinstance(value, decimal.Decimal):
            return {TAG: "decimal", "value": str(decimal.Decimal(value))}
        if isinstance(value, uuid.UUID):
            return {TAG: "uuid", "value": str(uuid.UUID(int=value.int))}
        if isinstance(value, (bytes, bytearray)):
            tag = "bytes" if isinstance(value, bytes) else "bytearray"
            return {TAG: tag, "base64": base64.b64encode(value).decode("ascii")}
        if isinstance(value, (set, frozenset)):
            tag = "frozenset" if isinstance(value, frozenset) else "set"
            return self.container(value, path, lambda: {TAG: tag, "items": _sorted(self.set_items(value, path))})
        if isinstance(value, UnresolvedValue):
            return self.unresolved_tag(value, path)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.container(value, path, lambda: self.dataclass_tag(value, path))
        if _is_model(value):
            return self.container(value, path, lambda: self.model_tag(value, path))
        if isinstance(value, (str, int)):
            return value  # a subclass of a JSON built-in: carried as that built-in (json writes its value)
        if isinstance(value, (float, list, dict)):
            return self.tree(_builtin(value), path)
        if isinstance(value, tuple):
            return self.tree(tuple(value), path)  # a NamedTuple: carried as a tuple
        raise PayloadError(f"{path}: {type_name(value)} cannot be encoded ({_HINT})")

    def set_items(self, values: Iterable[object], path: str) -> list[object]:
        return [self.tree(item, f"{path}[*]") for item in values]

    def allowed(self, cls: type, path: str) -> str:
        name = PayloadTypes.name_of(cls)
        if "<locals>" in cls.__qualname__ and self.types.resolve(name) is not cls:
            raise PayloadError(
                f"{path}: {name} is defined inside a function: no other process can find it by name "
                "(define it at module level, or register it with @engine.payload_type)"
            )
        if not self.types.allows(cls):
            raise PayloadError(f"{path}: {name} is not an allowed payload class: {PayloadTypes.HOW_TO_ALLOW}")
        return name

    def enum_tag(self, member: enum.Enum, path: str) -> object:
        cls = type(member)
        name = self.allowed(cls, path)
        label = member.name if member.name is not None or not isinstance(member, enum.Flag) else ""
        if not isinstance(label, str) or enum_member(cls, label) is not member:
            raise PayloadError(f"{path}: {name} member {member.value!r} has no name to carry it by")
        return {TAG: "enum", "class": name, "name": label}

    def dataclass_tag(self, value: object, path: str) -> object:
        name = self.allowed(type(value), path)
        values = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]
        return {TAG: "dataclass", "class": name, "fields": self.fields(values, path)}

    def model_tag(self, value: object, path: str) -> object:
        name = self.allowed(type(value), path)
        try:
            data = value.model_dump(mode="python", by_alias=True, round_trip=True)  # type: ignore[attr-defined]
        except Exception as exc:  # user serializers
            raise PayloadError(f"{path}: {name}.model_dump() raised {type(exc).__name__}: {exc}") from exc
        if isinstance(data, dict) and TAG not in data and all(type(k) is str for k in data):
            return {TAG: "pydantic", "class": name, "data": self.fields(data, path)}
        return {TAG: "pydantic", "class": name, "data": self.tree(data, path)}

    def unresolved_tag(self, value: UnresolvedValue, path: str) -> object:
        member = {"enum": "name", "dataclass": "fields", "pydantic": "data"}.get(value.kind)
        if member is None:
            raise PayloadError(f"{path}: an UnresolvedValue of unknown kind {value.kind!r}")
        data = value.data
        if value.kind == "dataclass" and isinstance(data, Mapping):
            data = self.fields(data, path)
        elif value.kind == "pydantic":
            data = self.tree(data, path)
        return {TAG: value.kind, "class": value.class_name, member: data}


def enum_member(cls: type[enum.Enum], name: str) -> enum.Enum | None:
    """The member of ``cls`` named ``name``; for a Flag, also ``"A|B"`` (members or-ed) and ``""`` (no flag)."""
    member = cls.__members__.get(name)
    if member is not None or not issubclass(cls, enum.Flag):
        return member
    try:
        combined = cls(0)
        for part in name.split("|") if name else ():
            combined |= cls.__members__[part]
    except (KeyError, ValueError):
        return None
    return combined


def _float_tag(value: float) -> object:
    return {TAG: "float", "value": _NON_FINITE.get(value, "NaN")}


def _moment_tag(tag: str, text: str, tzinfo: datetime.tzinfo | None, fold: int) -> object:
    out: dict[str, object] = {TAG: tag, "value": text}
    key = tzinfo.key if isinstance(tzinfo, zoneinfo.ZoneInfo) else None
    if key is not None:
        out["zone"] = key
    if fold:
        out["fold"] = 1
    return out


def _is_model(value: object) -> bool:
    pydantic = sys.modules.get("pydantic")  # never imported here: without it no value is a model
    base = getattr(pydantic, "BaseModel", None)
    return isinstance(base, type) and isinstance(value, base)


def _sorted(items: list[object]) -> list[object]:
    """A set's items in a stable order (by their JSON text), so equal sets encode to equal bytes."""
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, ensure_ascii=False))


def _label(key: object) -> str:
    """A dict key as it appears in a path: ``"name"`` for a string, else its repr (short)."""
    if isinstance(key, str) and not isinstance(key, enum.Enum):
        return json.dumps(str(key), ensure_ascii=False)
    try:
        text = repr(key)
    except Exception:  # a user __repr__
        return f"<{type_name(key)} key>"
    return text if len(text) <= 60 else text[:59] + "…"
