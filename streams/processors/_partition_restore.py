"""Reading one inbox partition's state back when the orchestrator adopts it: its records on the state topic (run
markers, snapshots, schedules, checkpoints), then its history from the checkpoint on (only runs still running).

The trace context of a traced running run comes back with it, from the headers of its ``WorkflowStarted`` history
record or of its ``RunSnapshot`` (``streams.processors._run_traces``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from aiokafka import TopicPartition

from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent
from schemas import RecordCodec, SchemaError
from streams._kafka_target import KafkaTarget
from streams._topics import Topics
from streams._tracing import carrier
from streams.kafka import read_partition
from streams.processors._partition_logic import PartitionLogic

log = logging.getLogger("streams.processors._orchestrator")

READ_STALL_S = 30.0
"""Longest a restore read may go without receiving a record while the partition has more."""


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What adopting a partition read: the checkpoint found (None: none), state records, history records read and
    history events applied."""

    checkpoint: int | None
    state_records: int
    history_read: int
    events: int


async def read_back(
    target: KafkaTarget, topics: Topics, records: RecordCodec, logic: PartitionLogic, number: int
) -> ReadBack:
    """Fill ``logic`` (a new partition's) from the state topic, then from the history from its checkpoint on.

    Raises:
        KafkaError, TimeoutError: a read failed or stood still (the adoption is retried).
    """
    checkpoint: int | None = None
    state_records = 0
    async for message in read_partition(target, TopicPartition(topics.state, number), None, READ_STALL_S):
        state_records += 1
        try:
            found = logic.restore_state(message.key or b"", message.value, carrier(message.headers))
        except SchemaError as exc:
            log.error("unreadable state record %s[%d]@%d skipped: %s", topics.state, number, message.offset, exc)
            continue
        checkpoint = found if found is not None else checkpoint
    read = count = 0
    async for message in read_partition(target, TopicPartition(topics.history, number), checkpoint, READ_STALL_S):
        logic.history_end = message.offset + 1
        try:
            event = records.decode(message.value)
        except SchemaError as exc:
            log.error("unreadable history record %s[%d]@%d skipped: %s", topics.history, number, message.offset, exc)
            continue
        read += 1
        trace = carrier(message.headers)
        if isinstance(event, HISTORY_EVENT_TYPES) and logic.restore(
            cast(HistoryEvent, event), message.offset, message.value, trace
        ):
            count += 1
    logic.history_end = max(logic.history_end, checkpoint or 0)
    return ReadBack(checkpoint, state_records, read, count)
