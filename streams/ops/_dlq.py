"""What ``kflow dlq list`` and ``kflow dlq show`` compute: the dead letters of ``<prefix>.dlq``, with where each came
from, what it was, why it failed and whether it was redriven. Nothing here prints.

A dead letter is addressed by its place on the dlq, ``PARTITION:OFFSET`` (``OFFSET`` alone when the dlq has one
partition). ``kflow dlq redrive`` (``streams.ops._dlq_redrive``) leaves a note next to each dead letter it
redrives: a ``DeadLetter`` whose ``topic`` is the dlq itself, whose ``partition``/``offset`` are the redriven dead
letter's address and whose ``error_type`` is ``REDRIVEN_TYPE``. Notes are not dead letters: they mark the one
they point at as redriven.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from aiokafka import TopicPartition

from schemas import Codec, SchemaError
from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget
from streams._settings import Settings
from streams._topics import Topics, partition_counts
from streams.kafka import admin, consumer, read_partition
from streams.ops._views import OpsError, format_time, table

REDRIVEN_TYPE: Final = "kflow.Redriven"
"""``error_type`` of the note ``kflow dlq redrive`` writes on the dlq for each dead letter it redrives."""
FILTER_FIELDS: Final = ("type", "reason", "run", "topic", "error")
"""What ``--filter FIELD=TEXT`` can name; a filter without a known ``FIELD=`` matches any of them."""

_CODEC = Codec()


@dataclass(frozen=True, slots=True, order=True)
class DlqAddress:
    """Where a dead letter is on the dlq: ``PARTITION:OFFSET``."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Redrive:
    """How a dead letter was redriven: when (epoch ms), to where (``<inbox>[<p>]@<offset>``), and the note's address."""

    at: int
    to: str
    note: DlqAddress


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One dead letter: its address, the ``DeadLetter`` record's fields, the original record's type (``undecodable``
    when its bytes are not a kflow record) and its redrive, if any."""

    address: DlqAddress
    failed_at: int
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    error_type: str
    record_type: str
    redrive: Redrive | None = None

    @property
    def origin(self) -> str:
        """Where the original record was read: ``<topic>[<partition>]@<offset>``."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def run_id(self) -> str:
        """The original record's key as text (a run id, or ``schedule:<id>``); ``-`` when it had none."""
        return "-" if self.key is None else self.key.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class DlqContents:
    """The dead letters read (oldest first), the dlq's partition count, and how many records were not readable."""

    letters: list[DeadLetterView]
    partitions: int
    unreadable: int = 0
    notes: dict[DlqAddress, Redrive] = field(default_factory=dict)
    capped: bool = False
    """The read stopped at its ``max_records``: older dead letters (or notes further on) were not read."""


@dataclass(frozen=True, slots=True)
class DlqFilter:
    """``--filter``: ``FIELD=TEXT`` (one of ``FILTER_FIELDS``) or ``TEXT``, matched case-insensitively: ``type`` the
    whole record type, the others a substring (``run``: of the key; ``topic``: of the original topic; ``error``: of
    the error type); ``TEXT`` alone a substring of any of them."""

    field: str | None
    text: str

    def matches(self, letter: DeadLetterView) -> bool:
        """Whether ``letter`` passes this filter."""
        text = self.text.lower()
        if self.field == "type":
            return letter.record_type.lower() == text
        values = {
            "type": letter.record_type,
            "reason": letter.reason,
            "run": letter.run_id,
            "topic": letter.topic,
            "error": letter.error_type,
        }
        if self.field is not None:
            return text in values[self.field].lower()
        return any(text in value.lower() for value in values.values())


def parse_filter(text: str) -> DlqFilter:
    """A ``--filter`` argument: ``type=StartWorkflow``, ``reason=unknown workflow``, ``run=ab12``, or plain text."""
    name, sep, rest = text.partition("=")
    if sep and name.strip().lower() in FILTER_FIELDS:
        return DlqFilter(name.strip().lower(), rest.strip())
    return DlqFilter(None, text.strip())


def parse_address(text: str, partitions: int) -> DlqAddress:
    """``PARTITION:OFFSET``, or ``OFFSET`` alone when the dlq has one partition.

    Raises:
        OpsError: not that form, a negative number, or a partition the dlq does not have.
    """
    head, sep, tail = text.strip().partition(":")
    try:
        partition, offset = (int(head), int(tail)) if sep else (0, int(head))
    except ValueError:
        raise OpsError(f"dead letter address {text!r}: expected PARTITION:OFFSET (e.g. 0:42)") from None
    if not sep and partitions != 1:
        raise OpsError(f"dead letter address {text!r}: the dlq has {partitions} partitions, give PARTITION:OFFSET")
    if partition < 0 or offset < 0 or partition >= partitions:
        raise OpsError(f"dead letter address {text!r}: the dlq has partitions 0..{partitions - 1} and offsets from 0")
    return DlqAddress(partition, offset)


def record_type(value: bytes) -> str:
    """The kflow record type ``value`` encodes, or ``undecodable``."""
    try:
        return _CODEC.decode(value).name
    except SchemaError:
        return "undecodable"


async def topic_partitions(bootstrap: KafkaTarget | str, topic: str) -> int:
    """The partition count of ``topic`` (``bootstrap``: a ``KafkaTarget``, or bootstrap servers over PLAINTEXT).

    Raises:
        OpsError: the topic does not exist.
        TransportError: Kafka is unreachable or refused a request.
    """
    with kafka_errors(bootstrap, f"describing {topic}"):
        client = admin(bootstrap)
        await client.start()
        try:
            if topic not in await client.list_topics():  # checked first: describing a missing topic may create it
                raise OpsError(f"topic {topic} does not exist (kflow topics create)")
            return (await partition_counts(client, [topic]))[topic]
        finally:
            await client.close()


async def read_dead_letters(
    settings: Settings,
    *,
    since_ms: int | None = None,
    only: DlqAddress | None = None,
    max_records: int | None = None,
) -> DlqContents:
    """The dead letters on the dlq (committed ones: read_committed), oldest first, each with its redrive if any.

    ``since_ms``: only those that failed at or after it (the read starts at the first record from then on);
    ``only``: read the partition of that address from that offset on (the dead letter and its notes);
    ``max_records``: read at most that many records, shared by the partitions (``capped`` says when a partition had
    more): with ``since_ms``, each partition's newest share of the window; else the first ones from the start.

    Raises:
        OpsError: the dlq does not exist.
        TransportError: Kafka is unreachable or refused a request.
    """
    topics = Topics(settings.topic_prefix)
    partitions = await topic_partitions(settings.kafka_target(), topics.dlq)
    tps = [TopicPartition(topics.dlq, p) for p in range(partitions) if only is None or p == only.partition]
    starts: dict[TopicPartition, int | None] = {tp: None if only is None else only.offset for tp in tps}
    share = None if max_records is None or not tps else max(1, max_records // len(tps))
    capped = False
    if since_ms is not None:
        found, ends = await _offsets_at(settings.kafka_target(), tps, since_ms)
        newest = found if share is None else {tp: max(found[tp], ends[tp] - share) for tp in tps}
        capped = any(newest[tp] > found[tp] for tp in tps)  # with a share: each partition's newest records
        starts = dict(newest)
    letters: list[DeadLetterView] = []
    notes: dict[DlqAddress, Redrive] = {}
    unreadable = 0
    with kafka_errors(settings.kafka_target(), f"reading {topics.dlq}"):
        for tp in tps:
            read = 0
            async for message in read_partition(settings.kafka_target(), tp, starts[tp]):
                if share is not None and read >= share:
                    capped = True
                    break
                read += 1
                try:
                    fields = _CODEC.decode(message.value).record
                except SchemaError:
                    unreadable += 1
                    continue
                here = DlqAddress(tp.partition, message.offset)
                if fields["error_type"] == REDRIVEN_TYPE and fields["topic"] == topics.dlq:
                    target = DlqAddress(_int(fields["partition"]), _int(fields["offset"]))
                    reason = str(fields["reason"])
                    notes[target] = Redrive(_int(fields["failed_at"]), reason.removeprefix("redriven to "), here)
                    continue
                letters.append(_view(here, fields))
    letters = [replace(letter, redrive=notes.get(letter.address)) for letter in letters]
    if since_ms is not None:
        letters = [letter for letter in letters if letter.failed_at >= since_ms]
    letters.sort(key=lambda letter: (letter.failed_at, letter.address))
    return DlqContents(letters, partitions, unreadable, notes, capped)


async def find_dead_letter(settings: Settings, address: DlqAddress, max_records: int | None = None) -> DeadLetterView:
    """The dead letter at ``address`` (``parse_address``), with its redrive if any (``max_records``: its note is
    looked for in at most that many records from ``address`` on).

    Raises:
        OpsError: a redrive note is there, or nothing (deleted by retention, or never written).
        TransportError: Kafka is unreachable or refused a request.
    """
    topics = Topics(settings.topic_prefix)
    contents = await read_dead_letters(settings, only=address, max_records=max_records)
    found = next((letter for letter in contents.letters if letter.address == address), None)
    if found is not None:
        return found
    for target, note in contents.notes.items():
        if note.note == address:
            raise OpsError(
                f"{address} is not a dead letter but the note of a redrive: dead letter {target} went to {note.to} "
                f"at {format_time(note.at)} UTC"
            )
    raise OpsError(f"no dead letter at {address} on {topics.dlq} (deleted by retention, or never written)")


async def _offsets_at(
    target: KafkaTarget, tps: list[TopicPartition], since_ms: int
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Per partition, the offset of the first record written at or after ``since_ms`` (its end when none is), and
    its end."""
    with kafka_errors(target, "finding offsets by time"):
        reader = consumer(target)
        await reader.start()
        try:
            found = await reader.offsets_for_times(dict.fromkeys(tps, since_ms))
            ends = await reader.end_offsets(tps)
        finally:
            await reader.stop()
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}, ends


def _int(value: object) -> int:
    return int(str(value))


def _view(address: DlqAddress, fields: dict[str, object]) -> DeadLetterView:
    key, value = fields["key"], fields["value"]
    original = bytes(value) if isinstance(value, bytes | bytearray) else b""
    return DeadLetterView(
        address=address,
        failed_at=_int(fields["failed_at"]),
        topic=str(fields["topic"]),
        partition=_int(fields["partition"]),
        offset=_int(fields["offset"]),
        key=bytes(key) if isinstance(key, bytes | bytearray) else None,
        value=original,
        reason=str(fields["reason"]),
        error_type=str(fields["error_type"]),
        record_type=record_type(original),
    )


# --- text and JSON -----------------------------------------------------------------------------------


def dlq_table(letters: Sequence[DeadLetterView]) -> str:
    """``kflow dlq list``: one line per dead letter, oldest first."""
    if not letters:
        return "no dead letters"
    rows = [
        [
            str(letter.address),
            format_time(letter.failed_at),
            letter.origin,
            letter.record_type,
            letter.run_id,
            "-" if letter.redrive is None else "redriven",
            " ".join(letter.reason.split()),
        ]
        for letter in letters
    ]
    return table(["DLQ", "FAILED (UTC)", "FROM", "TYPE", "KEY", "REDRIVE", "REASON"], rows)


def letter_json(letter: DeadLetterView) -> dict[str, object]:
    """One dead letter as JSON (``kflow dlq list --json``): its address and fields, the original's bytes excepted."""
    redrive = letter.redrive
    return {
        "address": str(letter.address),
        "dlq_partition": letter.address.partition,
        "dlq_offset": letter.address.offset,
        "failed_at": letter.failed_at,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": None if letter.key is None else letter.run_id,
        "record_type": letter.record_type,
        "reason": letter.reason,
        "error_type": letter.error_type,
        "redriven": None if redrive is None else {"at": redrive.at, "to": redrive.to, "note": str(redrive.note)},
    }


def dlq_show_json(letter: DeadLetterView) -> dict[str, object]:
    """``kflow dlq show --json``: ``letter_json`` plus the original's bytes (base64) and its decoded view."""
    decoded = decoded_record(letter.value)
    return {
        **letter_json(letter),
        "key_base64": None if letter.key is None else base64.b64encode(letter.key).decode(),
        "value_base64": base64.b64encode(letter.value).decode(),
        "record": decoded,
    }


def dlq_show_text(letter: DeadLetterView) -> str:
    """``kflow dlq show``: every field of the dead letter, then the original record decoded field by field."""
    redrive = letter.redrive
    lines = [
        f"dead letter {letter.address}",
        f"  failed at   {format_time(letter.failed_at)} UTC",
        f"  from        {letter.origin}",
        f"  key         {letter.run_id if letter.key is None else repr(letter.key.decode('utf-8', 'replace'))}",
        f"  type        {letter.record_type} ({len(letter.value):,} bytes)",
        f"  error type  {letter.error_type}",
        f"  reason      {letter.reason}",
        "  redriven    "
        + ("no" if redrive is None else f"{format_time(redrive.at)} UTC to {redrive.to} (note {redrive.note})"),
        "record:",
    ]
    decoded = decoded_record(letter.value)
    if "error" in decoded:
        lines.append(f"  undecodable: {decoded['error']}")
        lines.append(f"  bytes (hex, first 64): {letter.value[:64].hex(' ')}")
    else:
        fields = decoded["fields"]
        assert isinstance(fields, dict)
        width = max((len(name) for name in fields), default=0)
        lines += [f"  {name.ljust(width)}  {json.dumps(value, default=repr)}" for name, value in fields.items()]
    return "\n".join(lines)


def decoded_record(value: bytes) -> dict[str, object]:
    """``{"type": name, "fields": {...}}`` for a kflow record, JSON-ready: a JSON payload is shown decoded, any other
    payload (a signed pickle) only by its codec and size, never unpickled; ``{"error": why}`` for other bytes."""
    try:
        decoded = _CODEC.decode(value)
    except SchemaError as exc:
        return {"error": str(exc)}
    return {"type": decoded.name, "fields": {name: _plain(item) for name, item in decoded.record.items()}}


def _plain(value: object) -> object:
    if isinstance(value, dict):
        data = value.get("data")
        if set(value) == {"codec", "data"} and isinstance(data, bytes | bytearray):  # a Payload
            if value["codec"] == "json":
                try:
                    return {"json": json.loads(bytes(data))}
                except ValueError:
                    return {"json (invalid)": bytes(data).decode("utf-8", "replace")}
            return {str(value["codec"]): f"{len(data):,} bytes, not decoded"}
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value
