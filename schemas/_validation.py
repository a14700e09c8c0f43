"""Datum validators compiled once per schema, run before every encode.

fastavro's writer coerces some wrong values silently (a float into an `int` field, `"yes"` into a
`boolean`, an out-of-range integer into a 32-bit `int`, unknown fields dropped) and reports others with
messages that do not say which record they belong to. The codec therefore checks each datum against a
validator compiled from the schema JSON when the codec is built: a tree of closures, one call per
field, and an invalid datum raises `InvalidDatum` naming the field path.

A validator returns the datum in the form fastavro writes fastest: a value in a union becomes fastavro's
``(branch name, value)`` tuple notation, because without it fastavro re-validates the value against each
branch (for a record branch that costs more than writing the whole record). Only records that contain
such a value are copied; the caller's mappings are never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from ._errors import SchemaError

__all__ = ["Check", "InvalidDatum", "compile_validator"]

Check = Callable[[object], object]
"""A validator: returns the datum ready for fastavro's writer, or raises `InvalidDatum`."""

_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_MISSING: Final = object()


class InvalidDatum(Exception):
    """A datum does not match its schema; `path` lists field names from the outside in."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # Appended while the error propagates outwards, so stored innermost first.
        self._reversed_path: list[str] = [] if field is None else [field]

    def add_outer(self, field: str) -> None:
        """Prefix the path with the name of the enclosing field."""
        self._reversed_path.append(field)

    @property
    def path(self) -> str:
        """Field path, e.g. ``result.data`` or ``items[3]``; empty for the top-level record itself."""
        return "".join(
            part if part.startswith("[") or not index else f".{part}"
            for index, part in enumerate(reversed(self._reversed_path))
        )


def _type_name(datum: object) -> str:
    return type(datum).__name__


def _check_null(datum: object) -> object:
    if datum is not None:
        raise InvalidDatum(f"expected null, got {_type_name(datum)}")
    return datum


def _check_boolean(datum: object) -> object:
    if datum is not True and datum is not False:
        raise InvalidDatum(f"expected boolean, got {_type_name(datum)}")
    return datum


def _check_int(datum: object) -> object:
    if not isinstance(datum, int) or isinstance(datum, bool):
        raise InvalidDatum(f"expected int, got {_type_name(datum)}")
    if not _INT_MIN <= datum <= _INT_MAX:
        raise InvalidDatum(f"int out of 32-bit range: {datum}")
    return datum


def _check_long(datum: object) -> object:
    if not isinstance(datum, int) or isinstance(datum, bool):
        raise InvalidDatum(f"expected long, got {_type_name(datum)}")
    if not _LONG_MIN <= datum <= _LONG_MAX:
        raise InvalidDatum(f"long out of 64-bit range: {datum}")
    return datum


def _check_float(datum: object) -> object:
    if not isinstance(datum, (int, float)) or isinstance(datum, bool):
        raise InvalidDatum(f"expected a float number, got {_type_name(datum)}")
    return datum


def _check_string(datum: object) -> object:
    if not isinstance(datum, str):
        raise InvalidDatum(f"expected string, got {_type_name(datum)}")
    return datum


def _check_bytes(datum: object) -> object:
    if not isinstance(datum, (bytes, bytearray, memoryview)):
        raise InvalidDatum(f"expected bytes, got {_type_name(datum)}")
    return datum


_PRIMITIVES: Final[Mapping[str, Check]] = {
    "null": _check_null,
    "boolean": _check_boolean,
    "int": _check_int,
    "long": _check_long,
    "float": _check_float,
    "double": _check_float,
    "string": _check_string,
    "bytes": _check_bytes,
}
_NAMED_KINDS: Final = frozenset({"record", "error", "enum", "fixed"})


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _namespace_of(schema: Mapping[str, object], enclosing: str | None) -> str | None:
    name = str(schema.get("name", ""))
    if "." in name:
        return name.rsplit(".", 1)[0]
    namespace = schema.get("namespace", enclosing)
    return namespace if isinstance(namespace, str) and namespace else enclosing


class _Compiler:
    """Turns one self-contained schema (parsed JSON) into a validator."""

    def __init__(self) -> None:
        self._named: dict[str, Check] = {}

    def compile(self, schema: object, namespace: str | None) -> Check:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            return self._named[self._resolve(schema, namespace)]
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if not isinstance(schema, dict):
            raise SchemaError(f"not a schema: {schema!r}")
        if "logicalType" in schema:
            # Invariant: timestamps are plain longs on the wire, so every reader sees the same integer.
            raise SchemaError(f"logicalType is not used by kflow schemas: {schema!r}")
        kind = schema.get("type")
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        if kind == "record" or kind == "error":
            return self._record(schema, namespace)
        if kind == "enum":
            return self._define(schema, namespace, _enum_checker(frozenset(schema.get("symbols", ()))))
        if kind == "fixed":
            return self._define(schema, namespace, _fixed_checker(int(schema["size"])))
        if kind == "array":
            return _array_checker(self.compile(schema.get("items"), namespace))
        if kind == "map":
            return _map_checker(self.compile(schema.get("values"), namespace))
        raise SchemaError(f"unknown schema type {kind!r}")

    def _resolve(self, name: str, namespace: str | None) -> str:
        for candidate in (_full_name(name, namespace), name):
            if candidate in self._named:
                return candidate
        raise SchemaError(f"unknown type name {name!r}")

    def _define(self, schema: Mapping[str, object], namespace: str | None, checker: Check) -> Check:
        self._named[_full_name(str(schema.get("name")), _namespace_of(schema, namespace))] = checker
        return checker

    def _record(self, schema: Mapping[str, object], namespace: str | None) -> Check:
        own_namespace = _namespace_of(schema, namespace)
        full = _full_name(str(schema.get("name")), own_namespace)
        # A record may refer to itself: fields compiled below see a trampoline to the final checker.
        slot: list[Check] = []
        self._named[full] = lambda datum: slot[0](datum)
        raw_fields = schema.get("fields")
        if not isinstance(raw_fields, list):
            raise SchemaError(f"record {full} has no field list")
        fields = tuple(
            (str(field["name"]), self.compile(field["type"], own_namespace), "default" in field) for field in raw_fields
        )
        slot.append(_record_checker(full, fields))
        self._named[full] = slot[0]
        return slot[0]

    def _union(self, schema: list[object], namespace: str | None) -> Check:
        # Compile each branch before naming it: a branch may define the named type it refers to.
        branches = []
        for branch in schema:
            check = self.compile(branch, namespace)
            branches.append((self._branch_name(branch, namespace), check))
        if len(branches) == 2 and branches[0][0] == "null":
            return _nullable_checker(*branches[1])
        return _union_checker(tuple(branches), schema)

    def _branch_name(self, branch: object, namespace: str | None) -> str:
        """The name fastavro's tuple notation uses for a union branch."""
        if isinstance(branch, str):
            return branch if branch in _PRIMITIVES else self._resolve(branch, namespace)
        if isinstance(branch, dict):
            kind = str(branch.get("type"))
            if kind in _NAMED_KINDS:
                return _full_name(str(branch.get("name")), _namespace_of(branch, namespace))
            return kind
        raise SchemaError(f"not a schema: {branch!r}")


def _record_checker(full: str, fields: tuple[tuple[str, Check, bool], ...]) -> Check:
    known = frozenset(name for name, _, _ in fields)

    def check_record(datum: object) -> object:
        if not isinstance(datum, Mapping):
            raise InvalidDatum(f"expected a mapping for record {full}, got {_type_name(datum)}")
        present = 0
        prepared: dict[object, object] | None = None
        for name, check, has_default in fields:
            value = datum.get(name, _MISSING)
            if value is _MISSING:
                if has_default:
                    continue
                raise InvalidDatum("missing (the field has no default)", name)
            present += 1
            try:
                ready = check(value)
            except InvalidDatum as exc:
                exc.add_outer(name)
                raise
            if ready is not value:
                if prepared is None:
                    prepared = dict(datum)
                prepared[name] = ready
        if present != len(datum):
            unknown = sorted(repr(key) for key in datum if key not in known)
            raise InvalidDatum(f"unknown field(s) {', '.join(unknown)} for record {full}")
        return datum if prepared is None else prepared

    return check_record


def _nullable_checker(name: str, inner: Check) -> Check:
    def check_nullable(datum: object) -> object:
        if datum is None:
            return None
        return (name, inner(datum))

    return check_nullable


def _union_checker(branches: tuple[tuple[str, Check], ...], schema: list[object]) -> Check:
    def check_union(datum: object) -> object:
        for name, branch in branches:
            try:
                return (name, branch(datum))
            except InvalidDatum:
                continue
        raise InvalidDatum(f"{_type_name(datum)} matches no branch of union {schema!r}")

    return check_union


def _enum_checker(symbols: frozenset[object]) -> Check:
    def check_enum(datum: object) -> object:
        if not isinstance(datum, str) or datum not in symbols:
            raise InvalidDatum(f"expected one of {sorted(map(str, symbols))}, got {datum!r}")
        return datum

    return check_enum


def _fixed_checker(size: int) -> Check:
    def check_fixed(datum: object) -> object:
        if not isinstance(datum, (bytes, bytearray)) or len(datum) != size:
            raise InvalidDatum(f"expected {size} bytes, got {_type_name(datum)}")
        return datum

    return check_fixed


def _array_checker(items: Check) -> Check:
    def check_array(datum: object) -> object:
        if not isinstance(datum, (list, tuple)):
            raise InvalidDatum(f"expected an array (list), got {_type_name(datum)}")
        ready = []
        for index, item in enumerate(datum):
            try:
                ready.append(items(item))
            except InvalidDatum as exc:
                exc.add_outer(f"[{index}]")
                raise
        return ready

    return check_array


def _map_checker(values: Check) -> Check:
    def check_map(datum: object) -> object:
        if not isinstance(datum, Mapping):
            raise InvalidDatum(f"expected a map, got {_type_name(datum)}")
        ready = {}
        for key, value in datum.items():
            if not isinstance(key, str):
                raise InvalidDatum(f"map keys must be strings, got {_type_name(key)}")
            try:
                ready[key] = values(value)
            except InvalidDatum as exc:
                exc.add_outer(f"[{key!r}]")
                raise
        return ready

    return check_map


def compile_validator(schema: object) -> Check:
    """Compile a validator for one self-contained schema (the parsed JSON of an ``.avsc`` file).

    Raises:
        SchemaError: the schema uses a construct the validator does not know (or a logicalType).
    """
    return _Compiler().compile(schema, None)
