"""Message authentication codes of the records only kflow's own processes may write to ``<prefix>.inbox``.

With ``KFLOW_SECRET`` set, a step worker signs each ``StepResult`` and the timer processor each ``TimerFired``;
the orchestrator applies only those whose MAC verifies (anything else goes to ``.dlq``). Whoever can write to the
inbox without the secret can no longer report a step's outcome or fire a timer (docs/security.md, "Trust model").

A MAC is HMAC-SHA256 under a key derived from the secret for that record type alone (``derive_key``), over the
fields that name what the record answers, each written unambiguously (``message``):

- ``StepResult``: ``run_id``, ``position``, ``attempt`` — the step attempt it reports (a second result for that
  attempt is a duplicate and ignored, so the outcome needs no MAC of its own);
- ``TimerFired``: ``run_id``, ``timer_id``, ``position``, ``kind``, ``fire_at`` — the timer as it was armed
  (``fired_at``, when it fired, is left out: every re-fire of one arming carries the same MAC).

The same derivation keys the signatures of cloudpickle payloads (``schemas._payload``), under its own label.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final, TypeVar

from engine.runtime import StepResult, TimerFired

from ._errors import SchemaError

__all__ = ["MAC_FIELDS", "RecordSigner", "derive_key", "message"]

MAC_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "StepResult": ("run_id", "position", "attempt"),
    "TimerFired": ("run_id", "timer_id", "position", "kind", "fire_at"),
}
"""The fields each signed record type's MAC covers, in order."""

_DERIVATION: Final = b"kflow key derivation v1\x00"

Signed = TypeVar("Signed", StepResult, TimerFired)


def derive_key(secret: bytes, purpose: str) -> bytes:
    """The 32-byte key for one purpose (``record:StepResult``, ``payload:cloudpickle``): HMAC-SHA256(secret,
    label + purpose), so a MAC made for one purpose never verifies for another."""
    return hmac.new(secret, _DERIVATION + purpose.encode("utf-8"), hashlib.sha256).digest()


def message(*parts: str | int) -> bytes:
    """The bytes a MAC covers: each string as ``s`` + 4-byte big-endian length + UTF-8, each integer as ``i`` +
    8-byte big-endian two's complement, so no two sequences of parts give the same bytes."""
    out = bytearray()
    for part in parts:
        if isinstance(part, int):
            out += b"i" + part.to_bytes(8, "big", signed=True)
        else:
            data = part.encode("utf-8", "surrogatepass")
            out += b"s" + len(data).to_bytes(4, "big") + data
    return bytes(out)


class RecordSigner:
    """Signs and checks the MACs of ``StepResult`` and ``TimerFired`` records with keys derived from a secret.

    Args:
        secret: ``KFLOW_SECRET`` (non-empty bytes).

    Raises:
        ValueError: an empty secret.
    """

    __slots__ = ("_keys",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            raise ValueError("the secret must be non-empty bytes")
        self._keys: Final = {name: derive_key(bytes(secret), f"record:{name}") for name in MAC_FIELDS}

    def __repr__(self) -> str:
        return "RecordSigner(<secret>)"

    def sign(self, record: Signed) -> Signed:
        """``record`` with its MAC set."""
        return dataclasses.replace(record, mac=self.mac(type(record).__name__, _values(record)))

    def mac(self, name: str, fields: Mapping[str, object]) -> bytes:
        """The MAC of record type ``name`` with these field values (a decoded record or an Avro dict).

        Raises:
            SchemaError: not a signed record type, or a field missing or of the wrong type.
        """
        covered = MAC_FIELDS.get(name)
        if covered is None:
            raise SchemaError(f"{name} records carry no MAC")
        parts: list[str | int] = []
        for field in covered:
            value = fields.get(field)
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise SchemaError(f"{name}.{field} must be a string or an integer, got {type(value).__name__}")
            parts.append(value)
        return hmac.new(self._keys[name], message(*parts), hashlib.sha256).digest()

    def check(self, record: StepResult | TimerFired) -> str | None:
        """Why ``record`` is not authentic (the dead letter's reason), or None when its MAC verifies."""
        return self.check_fields(type(record).__name__, _values(record))

    def check_fields(self, name: str, fields: Mapping[str, object]) -> str | None:
        """``check`` on the fields of an Avro record of type ``name`` (``mac`` among them)."""
        what = _describe(name, fields)
        given = fields.get("mac")
        if given is None:
            return f"unauthenticated {what}: it carries no MAC (one is required while KFLOW_SECRET is set)"
        try:
            expected = self.mac(name, fields)
        except SchemaError as exc:
            return f"unauthenticated {what}: {exc}"
        if not isinstance(given, (bytes, bytearray)) or not hmac.compare_digest(bytes(given), expected):
            return f"unauthenticated {what}: its MAC does not verify (forged, altered, or signed with another secret)"
        return None


def _values(record: StepResult | TimerFired) -> dict[str, object]:
    return {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}


def _describe(name: str, fields: Mapping[str, object]) -> str:
    if name == "StepResult":
        return (
            f"StepResult for run {fields.get('run_id')} position {fields.get('position')} "
            f"attempt {fields.get('attempt')}"
        )
    return f"{name} {fields.get('timer_id')} for run {fields.get('run_id')}"
