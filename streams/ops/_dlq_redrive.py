"""``kflow dlq redrive``: re-produce dead-lettered inbox records to ``<prefix>.inbox`` after a fix, once each.

Only records read from ``.inbox`` are redriven (the orchestrator judges them again); a dead letter from
``.tasks`` or ``.timers`` is skipped with the reason: a dead ``ExecuteStep`` already failed its step (the run saw
the error and its retry policy ran), a dead timer record names no armed timer. A record is re-produced with its
original key and bytes to the inbox partition its key belongs to (murmur2), carrying the ``REDRIVE_OF`` header.

Idempotent: each redriven dead letter gets a note on the dlq (``REDRIVEN_TYPE``, see ``streams.ops._dlq``) in
the *same transaction* as its re-produced record, so a dead letter with a note was redriven and one without was
not; a second redrive skips it. The transactional id is one per prefix (``<prefix>.dlq-redrive``): starting a
redrive fences any other one still running and aborts its open transaction, and the dead letters (and notes) are
read only after that, read_committed, so two redrives never both re-produce one record. A record redriven that
fails again is dead-lettered again, as a new dead letter (redrivable in turn once fixed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from engine.runtime import is_schedule_key
from schemas import Codec, SchemaError
from streams._errors import kafka_errors
from streams._headers import REDRIVE_OF
from streams._settings import Settings
from streams._topics import Topics
from streams.kafka import close_producer, partition_for, producer
from streams.ops._dlq import REDRIVEN_TYPE, DeadLetterView, DlqFilter, read_dead_letters, topic_partitions
from streams.ops._views import format_time

CHUNK: Final = 500
"""Dead letters redriven per transaction (each transaction holds their records and their notes)."""

_CODEC = Codec()


@dataclass(frozen=True, slots=True)
class RedriveReport:
    """What a redrive did (or, ``dry_run``, would do): the dead letters redriven with where each went
    (``<inbox>[<p>]@<offset>``; in a dry run the partition only), and those skipped with why."""

    redriven: list[tuple[DeadLetterView, str]]
    skipped: list[tuple[DeadLetterView, str]]
    dry_run: bool


def plan_redrive(
    letters: Sequence[DeadLetterView], filters: Sequence[DlqFilter], topics: Topics
) -> tuple[list[DeadLetterView], list[tuple[DeadLetterView, str]]]:
    """The dead letters matching every filter, split into those to redrive and those skipped (with why)."""
    chosen: list[DeadLetterView] = []
    skipped: list[tuple[DeadLetterView, str]] = []
    for letter in letters:
        if not all(f.matches(letter) for f in filters):
            continue
        why = _skip_reason(letter, topics)
        if why is None:
            chosen.append(letter)
        else:
            skipped.append((letter, why))
    return chosen, skipped


def _skip_reason(letter: DeadLetterView, topics: Topics) -> str | None:
    if letter.redrive is not None:
        return f"redriven already, at {format_time(letter.redrive.at)} UTC to {letter.redrive.to}"
    if letter.topic != topics.inbox:
        what = {
            topics.tasks: "a dead step command already failed its step (the run saw the error)",
            topics.timers: "a dead timer record arms no timer",
        }.get(letter.topic, "it was not read from the inbox")
        return f"read from {letter.topic}: only {topics.inbox} records are redriven ({what})"
    if letter.key is None:
        return "it has no key, so no run: it would be dead-lettered again"
    parent = _child_of(letter.value)
    if parent is not None:
        return (
            f"the start of a child of run {parent}: the parent was told it failed and went on; "
            "a child started now would report to no one"
        )
    return None


def _child_of(value: bytes) -> str | None:
    """The parent run of a ``StartWorkflow`` for a child run (None for anything else, or a scheduled run)."""
    try:
        decoded = _CODEC.decode(value)
    except SchemaError:
        return None
    parent = decoded.record.get("parent_run_id") if decoded.name == "StartWorkflow" else None
    return parent if isinstance(parent, str) and parent and not is_schedule_key(parent) else None


async def redrive(
    settings: Settings,
    filters: Sequence[DlqFilter] = (),
    *,
    since_ms: int | None = None,
    dry_run: bool = False,
    now_ms: int,
) -> RedriveReport:
    """Redrive every dead letter from the inbox that matches ``filters`` (and failed at or after ``since_ms``) and
    was not redriven before (module docstring).

    Raises:
        OpsError: the dlq or the inbox does not exist.
        TransportError: Kafka is unreachable or refused a request (a chunk not committed is not redriven: run the
            command again).
    """
    topics = Topics(settings.topic_prefix)
    inbox_partitions = await topic_partitions(settings.kafka_target(), topics.inbox)
    if dry_run:
        chosen, skipped = plan_redrive((await read_dead_letters(settings, since_ms=since_ms)).letters, filters, topics)
        where = [(letter, f"{topics.inbox}[{partition_for(_key(letter), inbox_partitions)}]") for letter in chosen]
        return RedriveReport(where, skipped, dry_run=True)
    with kafka_errors(settings.kafka_target(), "redriving dead letters"):
        txn = producer(settings.kafka_target(), transactional_id=f"{settings.topic_prefix}.dlq-redrive")
        try:
            await txn.start()  # init_transactions: fences another redrive and aborts its open transaction
            contents = await read_dead_letters(settings, since_ms=since_ms)  # after the fence: every note
            chosen, skipped = plan_redrive(contents.letters, filters, topics)
            done: list[tuple[DeadLetterView, str]] = []
            for start in range(0, len(chosen), CHUNK):
                async with txn.transaction():
                    chunk = chosen[start : start + CHUNK]
                    sends = []
                    for letter in chunk:
                        origin = f"{topics.dlq}[{letter.address.partition}]@{letter.address.offset}".encode()
                        partition = partition_for(_key(letter), inbox_partitions)
                        sends.append(
                            await txn.send(
                                topics.inbox,
                                letter.value,
                                key=letter.key,
                                partition=partition,
                                headers=[(REDRIVE_OF, origin)],
                            )
                        )
                    sent = await asyncio.gather(*sends)
                    for letter, metadata in zip(chunk, sent, strict=True):
                        to = f"{topics.inbox}[{metadata.partition}]@{metadata.offset}"
                        note = _note(topics, letter, to, now_ms)
                        await txn.send(topics.dlq, note, key=letter.key or b"", partition=letter.address.partition)
                        done.append((letter, to))
        finally:
            await close_producer(txn)
    return RedriveReport(done, skipped, dry_run=False)


def _key(letter: DeadLetterView) -> bytes:
    assert letter.key is not None  # plan_redrive skips dead letters without a key
    return letter.key


def _note(topics: Topics, letter: DeadLetterView, to: str, now_ms: int) -> bytes:
    """The dlq note saying ``letter`` was redriven to ``to`` (a ``DeadLetter`` pointing at the dead letter)."""
    return _CODEC.encode(
        "DeadLetter",
        {
            "topic": topics.dlq,
            "partition": letter.address.partition,
            "offset": letter.address.offset,
            "key": letter.key,
            "value": b"",
            "reason": f"redriven to {to}",
            "error_type": REDRIVEN_TYPE,
            "failed_at": now_ms,
        },
    )
