"""The histories of one inbox partition's running runs, in memory up to a byte budget (``KFLOW_LIVE_HISTORY_BYTES``).

Each event is held as the bytes it has on the history topic (the engine's record, encoded), and counts its size plus
``EVENT_OVERHEAD``. Past the budget the least recently used histories move to a private temporary SQLite database on
local disk (deleted when the partition is dropped or the process ends), so memory holds at most the budget. A
history on disk is read back when its run is replayed (a live-run cache miss: it then counts in memory again, as the
most recently used) or snapshotted; new events of a run whose history is on disk are appended there. The disk copy
is a cache, never a source of truth: a partition's next owner rebuilds everything from the state and history topics.

Invariant: after every ``append``, ``start``, ``events`` and ``hold_snapshot``, ``held_bytes + snapshot_bytes <=
max_bytes`` (``snapshot_bytes``: the snapshots held as read, not decoded yet).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent, WorkflowStarted, status_of
from schemas import RecordCodec, SchemaError

log = logging.getLogger(__name__)

LIVE_HISTORY_BYTES = 64 * 1024 * 1024
"""Default budget of one partition's histories in memory (``KFLOW_LIVE_HISTORY_BYTES``)."""
EVENT_OVERHEAD = 56
"""Bytes counted per event besides its encoded size: the header of a bytes object and its slot in a list."""


@dataclass(slots=True)
class _History:
    events: list[bytes] | None = field(default_factory=list)  # None: on disk only
    length: int = 0
    size: int = 0  # counted bytes of all its events
    on_disk: int = 0  # its first ``on_disk`` events are on disk
    started_at: int = 0
    workflow_name: str = ""
    idempotency_key: str | None = None
    ending: HistoryEvent | None = None  # its terminal event, until the run is retired


class HistoryStore(Mapping[str, list[HistoryEvent]]):
    """Running runs' histories by run id; ``store[run_id]`` is the decoded history (``events``).

    Args:
        records: the codec the events are encoded with.
        max_bytes: the budget in memory (None: unbounded).
    """

    def __init__(self, records: RecordCodec, max_bytes: int | None = LIVE_HISTORY_BYTES) -> None:
        self.records = records
        self.max_bytes = max_bytes
        self._runs: dict[str, _History] = {}
        self._held: OrderedDict[str, None] = OrderedDict()  # in memory, least recently used first
        self._db: sqlite3.Connection | None = None
        self.held_bytes = 0
        self.peak_bytes = 0  # the most ever held after an operation
        self.evictions = 0  # histories moved to disk
        self.reads = 0  # histories read back from disk
        # Runs restored from a RunSnapshot and not used since: the record as read, decoded at the run's first use, so
        # adopting a partition of a million sleeping runs decodes none of them. They count in the budget: past it a
        # snapshot is decoded at once and held like any history (the least recently used go to disk).
        self._snapshots: dict[str, bytes] = {}
        self.snapshot_bytes = 0

    # --- reading -------------------------------------------------------------------------

    def __getitem__(self, run_id: str) -> list[HistoryEvent]:
        return self.events(run_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def length(self, run_id: str) -> int:
        """How many events the run's history has (0 for a run not held)."""
        entry = self._entry(run_id)
        return 0 if entry is None else entry.length

    def size(self, run_id: str) -> int:
        """The bytes the run's history counts (0 for a run not held)."""
        entry = self._entry(run_id)
        return 0 if entry is None else entry.size

    def started(self, run_id: str) -> tuple[str, str | None, int]:
        """The run's workflow name, idempotency key and start time (from its ``WorkflowStarted``)."""
        entry = self._required(run_id)
        return entry.workflow_name, entry.idempotency_key, entry.started_at

    def ending(self, run_id: str) -> HistoryEvent | None:
        """The run's terminal event, when its history ends with one."""
        entry = self._entry(run_id)
        return None if entry is None else entry.ending

    def in_memory(self, run_id: str) -> bool:
        """Whether the run's history is held in memory (else it is on disk)."""
        return run_id in self._held

    def events(self, run_id: str) -> list[HistoryEvent]:
        """The run's history, decoded; one on disk is read back and held again, as the most recently used.

        Raises:
            KeyError: no such run.
            SchemaError: an event that does not decode to a history event.
        """
        entry = self._required(run_id)
        raws = self.raw(run_id)
        if entry.events is None:
            entry.events = raws
            self._hold(run_id, entry)
        else:
            self._touch(run_id)
        events = [self.records.decode(raw) for raw in raws]
        for event in events:
            if not isinstance(event, HISTORY_EVENT_TYPES):
                raise SchemaError(f"history of run {run_id} holds a {type(event).__name__}")
        return cast(list[HistoryEvent], events)

    def raw(self, run_id: str) -> list[bytes]:
        """The run's events as encoded, oldest first (read from disk when there, without holding them again)."""
        entry = self._required(run_id)
        if entry.events is not None:
            return list(entry.events)
        self.reads += 1
        rows = self._disk().execute("SELECT raw FROM events WHERE run = ? ORDER BY seq", (run_id,)).fetchall()
        return [bytes(row[0]) for row in rows]

    # --- changing ------------------------------------------------------------------------

    def _touch(self, run_id: str) -> None:
        """Mark a held history as the most recently used."""
        self._held.move_to_end(run_id)

    def start(self, run_id: str) -> None:
        """Hold a new, empty history (a run that is starting)."""
        self.remove(run_id)
        self._runs[run_id] = _History()
        self._held[run_id] = None

    def append(self, run_id: str, events: Sequence[HistoryEvent], raws: Sequence[bytes] | None = None) -> None:
        """Add ``events`` (``raws``: the same, encoded; encoded here when not given) to the run's history."""
        if not events:
            return
        entry = self._required(run_id)
        encoded = list(raws) if raws is not None else [self.records.encode(event) for event in events]
        first = events[0]
        if isinstance(first, WorkflowStarted) and entry.length == 0:
            entry.started_at, entry.workflow_name = first.timestamp, sys.intern(first.workflow_name)
            entry.idempotency_key = first.idempotency_key
        entry.ending = events[-1] if status_of(events[-1]) is not None else None
        added = sum(len(raw) for raw in encoded) + EVENT_OVERHEAD * len(encoded)
        entry.size += added
        if entry.events is None:  # on disk: appended there
            self._write(run_id, entry.length, encoded)
            entry.on_disk += len(encoded)
            entry.length += len(encoded)
            return
        entry.events.extend(encoded)
        entry.length += len(encoded)
        self.held_bytes += added
        self._touch(run_id)
        self._enforce()

    def truncate(self, run_id: str, length: int) -> None:
        """Drop the run's events after the first ``length`` (undoing an input that is not kept)."""
        entry = self._entry(run_id)
        if entry is None or length >= entry.length:
            return
        if entry.on_disk > length:
            self._disk().execute("DELETE FROM events WHERE run = ? AND seq > ?", (run_id, length))
            entry.on_disk = length
        raws = self.raw(run_id)[:length]
        if entry.events is not None:
            entry.events = raws
        size = sum(len(raw) for raw in raws) + EVENT_OVERHEAD * len(raws)
        if entry.events is not None:
            self.held_bytes -= entry.size - size
        entry.size, entry.length, entry.ending = size, length, None

    def remove(self, run_id: str) -> None:
        """Forget the run's history (it finished, or was forgotten)."""
        snapshot = self._snapshots.pop(run_id, None)
        if snapshot is not None:
            self.snapshot_bytes -= len(snapshot)
        entry = self._runs.pop(run_id, None)
        if entry is None:
            return
        if run_id in self._held:
            del self._held[run_id]
            self.held_bytes -= entry.size
        if entry.on_disk:
            self._disk().execute("DELETE FROM events WHERE run = ?", (run_id,))

    def replace(self, run_id: str, events: Sequence[HistoryEvent], raws: Sequence[bytes] | None = None) -> None:
        """Hold ``events`` as the run's whole history (restored from a snapshot)."""
        self.start(run_id)
        self.append(run_id, events, raws)

    def hold_snapshot(self, run_id: str, record: bytes) -> None:
        """Hold the run's whole history as its encoded ``RunSnapshot`` record, decoded at the run's first use.

        A snapshot that turns out unreadable then (not a RunSnapshot, or holding records that are not history events)
        is logged and the run dropped, as if it had no snapshot."""
        self.remove(run_id)
        self._runs[run_id] = _History(events=None)  # a placeholder until the first use: _entry() decodes it
        self._snapshots[run_id] = record
        self.snapshot_bytes += len(record)
        if self.max_bytes is not None and self.held_bytes + self.snapshot_bytes > self.max_bytes:
            self._entry(run_id)  # over the budget: decoded now, so the budget's eviction to disk applies to it

    def _required(self, run_id: str) -> _History:
        """``_entry`` for a run that must be held (KeyError when it is not, or its snapshot proved unreadable)."""
        entry = self._entry(run_id)
        if entry is None:
            raise KeyError(run_id)
        return entry

    def _entry(self, run_id: str) -> _History | None:
        """The run's entry, its snapshot decoded first if it still holds one (None: no such run, or unreadable)."""
        record = self._snapshots.pop(run_id, None)
        if record is None:
            return self._runs.get(run_id)
        self.snapshot_bytes -= len(record)
        del self._runs[run_id]
        try:
            decoded = self.records.codec.decode(record)
            if decoded.name != "RunSnapshot":
                raise SchemaError(f"a {decoded.name} record, not a RunSnapshot")
            raws = [bytes(raw) for raw in cast(list[bytes], decoded.record["events"])]
            events = [self.records.decode(raw) for raw in raws]
            if not events or not all(isinstance(event, HISTORY_EVENT_TYPES) for event in events):
                raise SchemaError("it holds records that are not history events")
        except SchemaError as exc:
            log.error("snapshot of run %s skipped: %s", run_id, exc)
            return None
        self.start(run_id)
        self.append(run_id, cast(list[HistoryEvent], events), raws)
        return self._runs[run_id]

    def close(self) -> None:
        """Drop everything (the disk copy too)."""
        self._snapshots.clear()
        self.snapshot_bytes = 0
        self._runs.clear()
        self._held.clear()
        self.held_bytes = 0
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- the budget ----------------------------------------------------------------------

    def _hold(self, run_id: str, entry: _History) -> None:
        self._held[run_id] = None
        self.held_bytes += entry.size
        self._enforce()

    def _enforce(self) -> None:
        """Move the least recently used histories to disk until the budget holds (snapshots held undecoded count)."""
        budget = None if self.max_bytes is None else self.max_bytes - self.snapshot_bytes
        while budget is not None and self.held_bytes > budget and self._held:
            run_id, _ = self._held.popitem(last=False)
            entry = self._runs[run_id]
            assert entry.events is not None
            self._write(run_id, entry.on_disk, entry.events[entry.on_disk :])
            entry.on_disk, entry.events = entry.length, None
            self.held_bytes -= entry.size
            self.evictions += 1
        self.peak_bytes = max(self.peak_bytes, self.held_bytes)

    def _write(self, run_id: str, after: int, raws: Sequence[bytes]) -> None:
        rows = [(run_id, after + i + 1, raw) for i, raw in enumerate(raws)]
        if rows:
            self._disk().executemany("INSERT OR REPLACE INTO events (run, seq, raw) VALUES (?, ?, ?)", rows)

    def _disk(self) -> sqlite3.Connection:
        if self._db is None:
            # "": a private temporary database, its file deleted when the connection closes; pages beyond a small
            # cache go to that file, not to memory.
            db = sqlite3.connect("", isolation_level=None)
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-2048"):
                db.execute(f"PRAGMA {pragma}")
            db.execute("CREATE TABLE events (run TEXT, seq INTEGER, raw BLOB NOT NULL, PRIMARY KEY (run, seq))")
            weakref.finalize(self, db.close)  # a store dropped without close(): its file goes with it
            self._db = db
        return self._db
