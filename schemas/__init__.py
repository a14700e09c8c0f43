"""kflow's wire format: one Avro schema per record type, single-object encoding, payload codecs.

The ``*.avsc`` files next to this module are the contract (see ``docs/records.md``); `Codec` encodes and
decodes records with them, `encode_payload` / `decode_payload` turn Python values into the ``Payload``
records they carry, and `RecordCodec` maps the engine's record dataclasses to and from those bytes.
"""

from __future__ import annotations

from ._codec import Codec, Decoded
from ._errors import PayloadError, SchemaError
from ._payload import decode_payload, encode_payload
from ._records import RecordCodec
from ._schema_set import learn_schema, set_schema_source
from ._typed_json import UnresolvedValue

__all__ = [
    "Codec",
    "Decoded",
    "PayloadError",
    "RecordCodec",
    "SchemaError",
    "UnresolvedValue",
    "decode_payload",
    "encode_payload",
    "learn_schema",
    "set_schema_source",
]
