"""How many bytes a payload value takes, for the budgets that bound what a run holds (early hook payloads).

The engine holds decoded values, not the bytes they came in, so it measures a value the way the JSON payload
codecs write it: its compact JSON text. Deterministic (replay counts what the live run counted) and never raises.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json


def payload_bytes(value: object) -> int:
    """About the bytes ``value`` takes as a payload: the UTF-8 length of its compact JSON text, an Enum counted
    as its value, a dataclass or a pydantic model as its fields, bytes as base64, a set or tuple as a list and
    anything else as its ``repr``."""
    try:
        text = json.dumps(value, default=_plain, separators=(",", ":"), ensure_ascii=False)
    except Exception:  # a cycle, or user code (a model's dump) raising: count its repr instead
        text = _repr(value)
    return len(text.encode("utf-8", "surrogatepass"))


def early_payload_bytes(token: str, payload: object) -> int:
    """What one early hook payload counts against ``EventLimits.early_hook_bytes``: the payload and its token."""
    return payload_bytes(payload) + len(token.encode("utf-8", "surrogatepass"))


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return _repr(value)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
