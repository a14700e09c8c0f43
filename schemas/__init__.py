"""kflow's wire format: one Avro schema per record type, single-object encoding, payload codecs.

The ``*.avsc`` files next to this module are the contract (see ``docs/records.md``); `Codec` encodes and
decodes records with them, `encode_payload` / `decode_payload` turn Python values into the ``Payload``
records they carry, `RecordCodec` maps the engine's record dataclasses to and from those bytes, and
`RecordSigner` signs and checks the MACs of the records only kflow's processes may write (``KFLOW_SECRET``).
"""

from __future__ import annotations

from ._codec import Codec, Decoded
from ._errors import PayloadError, SchemaError
from ._macs import RecordSigner
from ._payload import decode_payload, encode_payload
from ._records import RecordCodec
from ._schema_set import learn_schema, set_schema_source
from ._typed_json import UnresolvedValue

__all__ = [
    "Codec",
    "Decoded",
    "PayloadError",
    "RecordCodec",
    "RecordSigner",
    "SchemaError",
    "UnresolvedValue",
    "decode_payload",
    "encode_payload",
    "learn_schema",
    "set_schema_source",
]
