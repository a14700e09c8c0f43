"""Kafka's record limit, and the one way kflow says a record is over it (docs/notes.md #6).

Every place that produces a record checks it before Kafka would refuse it, and says so with ``too_large``: the
client (a start's arguments, a hook payload, a schedule command), the step worker (a step's result), the
orchestrator (a workflow's result, step and child arguments, through ``limited_check``; anything else it would
write: a dead letter naming the input) and the schedules (``decide_schedule`` keeps a state under it).
"""

from __future__ import annotations

from engine.runtime import CallArgs, PayloadCheck, StartWorkflow, WorkflowCompleted
from schemas import PayloadError, RecordCodec
from streams.kafka import MAX_MESSAGE_BYTES

PAYLOAD_HEADROOM = 16_000
"""Bytes of a record left for what is around a payload (ids, names, a step context): a payload over
``MAX_MESSAGE_BYTES - PAYLOAD_HEADROOM`` is refused where the workflow produces it."""


def too_large(what: str, size: int, then: str = "") -> str:
    """``"{what} is too large: {size} bytes encoded, over the {limit}-byte record limit (MAX_MESSAGE_BYTES)"``,
    then ``"; {then}"`` when given."""
    text = f"{what} is too large: {size:,} bytes encoded, over the {MAX_MESSAGE_BYTES:,}-byte record limit"
    return f"{text} (MAX_MESSAGE_BYTES){f'; {then}' if then else ''}"


def limited_check(records: RecordCodec) -> PayloadCheck:
    """``records.payload_check`` (values its codec cannot carry) plus the record limit: a value whose payload is
    over ``MAX_MESSAGE_BYTES - PAYLOAD_HEADROOM`` raises ``PayloadError`` (``too_large``) where the workflow
    produces it, so a workflow's result too large fails its run and step or child arguments raise at the call,
    instead of parking the input that led to them."""
    base = records.payload_check
    limit = MAX_MESSAGE_BYTES - PAYLOAD_HEADROOM

    def check(value: object, field: str) -> None:
        if base is not None:
            base(value, field)
        if isinstance(value, CallArgs):  # measured in the smallest record that carries it
            size = len(records.encode(StartWorkflow(run_id="", workflow_name="", args=value, requested_at=0)))
        else:
            size = len(records.encode(WorkflowCompleted(run_id="", seq=0, timestamp=0, result=value)))
        if size > limit:
            what = {"result": "the workflow's result", "args": "the arguments payload of the call"}.get(field, field)
            raise PayloadError(too_large(what, size, "pass a reference to large data (a key, a URL) instead"))

    return check
