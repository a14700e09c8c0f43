"""The error types of the schemas package."""

from __future__ import annotations

from engine import KflowError

__all__ = ["PayloadError", "SchemaError"]


class SchemaError(KflowError):
    """A record or payload could not be encoded or decoded.

    The root error of the package (itself an ``engine.KflowError``): every failure of `Codec`, `encode_payload`
    and `decode_payload` ends in a `SchemaError` (or subclass) whose message names the reason. Retrying the same
    bytes or the same record cannot succeed, so processors send the offending record to the dead-letter topic.
    """

    retryable = False


class PayloadError(SchemaError):
    """An argument/result payload could not be encoded or decoded.

    Raised for an unknown payload codec; a value the JSON codecs cannot carry (the message starts with its path
    and type, ``$.result["items"][2]: object …``); a ``json+types`` document with an unknown or malformed tag, or
    naming a class that is not allowed (the message says how to allow it; docs/payloads.md); and a cloudpickle
    payload that is unsigned, badly signed, truncated or arrives while no secret is configured (such a payload
    is never unpickled).
    """
