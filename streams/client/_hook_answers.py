"""The orchestrator's answer to one ``ResumeHook``, read from the run's history and dead-letter partitions.

The orchestrator answers every ``ResumeHook`` on Kafka, keyed by the run id, inside its transactions:
a ``HookReceived`` on ``<prefix>.history`` with the record's token and payload (``position >= 0``:
delivered to a waiting hook; ``-1``: kept until the workflow reaches the hook), or a ``DeadLetter`` on
``<prefix>.dlq`` whose ``value`` is the ResumeHook's bytes and whose ``reason`` says why it was refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from aiokafka import TopicPartition

from engine import runtime
from schemas import RecordCodec, SchemaError
from streams._kafka_target import KafkaTarget
from streams.client._watch import PartitionWatch

# The orchestrator's reasons may start by restating what the error message already says.
_RESTATED: Final = re.compile(r"^hook payload (?:for token '[^']*' )?not delivered: ")


@dataclass(frozen=True, slots=True)
class HookAnswer:
    """What became of one hook payload: ``delivered``, ``queued`` (kept until the workflow reaches the
    hook) or ``refused`` (a dead letter; ``reason`` says why)."""

    outcome: Literal["delivered", "queued", "refused"]
    reason: str = ""


class HookAnswerMatcher:
    """Recognises the answer to one sent ``ResumeHook`` among the records of its run's partitions.

    A dead letter is matched by identity: the inbox offset and the exact bytes that were sent. A
    ``HookReceived`` carries no reference to its ResumeHook, so it is matched by run, token and equal
    payload (raw ``Payload`` bytes, else the decoded values): the first such event after the watch began.

    Args:
        records: the codec the ResumeHook was encoded with (decodes the payloads to compare).
        sent: the ResumeHook's bytes as produced.
        inbox_topic: the topic it was produced to; ``offset``: the offset it got there.
    """

    def __init__(self, records: RecordCodec, sent: bytes, inbox_topic: str, offset: int) -> None:
        resume = records.codec.decode(sent)
        if resume.name != "ResumeHook":
            raise SchemaError(f"expected the bytes of a ResumeHook, got a {resume.name}")
        self._records, self._sent, self._inbox, self._offset = records, sent, inbox_topic, offset
        self._key = str(resume.record["run_id"]).encode()
        self._token = resume.record["token"]
        self._raw_payload = resume.record["payload"]

    def history(self, key: bytes | None, value: bytes) -> HookAnswer | None:
        """The answer if this history record is the ``HookReceived`` for the payload, else None."""
        if key != self._key:
            return None
        try:
            event = self._records.codec.decode(value)
        except SchemaError:
            return None
        record = event.record
        if event.name != "HookReceived" or record["token"] != self._token or not self._same_payload(record, value):
            return None
        position = record["position"]
        return HookAnswer("queued" if isinstance(position, int) and position < 0 else "delivered")

    def dead_letter(self, key: bytes | None, value: bytes) -> HookAnswer | None:
        """The answer if this dead-letter record parks the sent ResumeHook, else None."""
        if key != self._key:
            return None
        try:
            letter = self._records.codec.decode(value)
        except SchemaError:
            return None
        record = letter.record
        if (
            letter.name != "DeadLetter"
            or record["value"] != self._sent
            or record["offset"] != self._offset
            or record["topic"] != self._inbox
        ):
            return None
        return HookAnswer("refused", _RESTATED.sub("", str(record["reason"])))

    def _same_payload(self, record: dict[str, object], value: bytes) -> bool:
        if record["payload"] == self._raw_payload:
            return True
        # Re-encoded by the orchestrator with another codec (or a pickle that re-pickles differently).
        try:
            received, sent = self._records.decode(value), self._records.decode(self._sent)
        except SchemaError:
            return False
        return (
            isinstance(received, runtime.HookReceived)
            and isinstance(sent, runtime.ResumeHook)
            and received.payload == sent.payload
        )


class HookAnswerWatch(PartitionWatch):
    """A watch of one history and one dead-letter partition for the answer to one ``ResumeHook``.

    Use as ``async with HookAnswerWatch(...) as watch`` *before* producing the ResumeHook: entering
    positions both partitions at their current end, so the answer, written after the send, is read.
    """

    def __init__(self, bootstrap: KafkaTarget | str, history: TopicPartition, dlq: TopicPartition) -> None:
        super().__init__(bootstrap, [history, dlq])
        self._history = history

    async def answer(self, matcher: HookAnswerMatcher, deadline: float) -> HookAnswer | None:
        """The matching answer, or None when none was read by ``deadline`` (event loop time)."""

        def match(tp: TopicPartition, key: bytes | None, value: bytes | None) -> HookAnswer | None:
            if value is None:
                return None
            return matcher.history(key, value) if tp == self._history else matcher.dead_letter(key, value)

        return await self.first(match, deadline)
