"""The timer processor's state for one ``.timers`` partition: a persisted due-time index and its head.

`TimerIndex` is the fast local part: one SQLite file per input partition, one row per armed timer keyed
by ``(run_id, timer_id)``, indexed by due time, plus the end offset of the partition's changelog
(``streams.processors._timer_changelog``) that the rows reflect. `TimerHead` is the bounded in-memory part: the
soonest timers of that index, in due order, so the scheduler never scans SQLite while timers are merely
waiting. Neither does Kafka I/O nor reads a clock; the processor in ``streams.processors._timer_processor`` drives both.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.runtime import StartTimer
from streams._tracing import Carrier, pack, unpack

TimerKey = tuple[str, str]
"""``(run_id, timer_id)``: a timer's identity (``timer_id`` is unique within its run)."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS timers (run_id TEXT NOT NULL, timer_id TEXT NOT NULL, "
    "position INTEGER NOT NULL, kind TEXT NOT NULL, fire_at INTEGER NOT NULL, PRIMARY KEY (run_id, timer_id))",
    # Covers the refill query's whole ORDER BY, so a refill reads the index in order and never sorts.
    "CREATE INDEX IF NOT EXISTS timers_by_fire_at ON timers (fire_at, run_id, timer_id)",
    # One row: the changelog partition's end offset after the last write these rows reflect.
    "CREATE TABLE IF NOT EXISTS changelog (id INTEGER PRIMARY KEY CHECK (id = 0), end_offset INTEGER NOT NULL)",
)
_COLUMNS = {"requested_at": "INTEGER", "trace": "BLOB"}
"""Columns added after the first release (nullable: an older kflow's rows and inserts leave them NULL)."""
_UPSERT = (
    "INSERT INTO timers (run_id, timer_id, position, kind, fire_at, requested_at, trace) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, timer_id) DO UPDATE SET position = excluded.position, kind = excluded.kind, "
    "fire_at = excluded.fire_at, requested_at = excluded.requested_at, trace = excluded.trace"
)
_DELETE = "DELETE FROM timers WHERE run_id = ? AND timer_id = ?"
_DELETE_FIRED = "DELETE FROM timers WHERE run_id = ? AND timer_id = ? AND fire_at = ?"
_HOLDS = "SELECT fire_at FROM timers WHERE run_id = ? AND timer_id = ?"
_SET_END = (
    "INSERT INTO changelog (id, end_offset) VALUES (0, ?) "
    "ON CONFLICT (id) DO UPDATE SET end_offset = excluded.end_offset"
)
_EARLIEST = (
    "SELECT fire_at, run_id, timer_id, position, kind, requested_at, trace FROM timers "
    "ORDER BY fire_at, run_id, timer_id LIMIT ?"
)


@dataclass(frozen=True, slots=True, order=True)
class ArmedTimer:
    """One armed timer; instances sort by due time, then by ``(run_id, timer_id)`` to break ties.

    ``requested_at`` (when it was armed; 0: unknown) and ``trace`` (its run's trace context, from the ``StartTimer``'s
    headers; ``()``: none) only describe it: they take no part in comparisons."""

    fire_at: int
    run_id: str
    timer_id: str
    position: int
    kind: str
    requested_at: int = field(default=0, compare=False)
    trace: Carrier = field(default=(), compare=False)

    @property
    def key(self) -> TimerKey:
        """The timer's identity within the index."""
        return self.run_id, self.timer_id

    @property
    def due_order(self) -> tuple[int, str, str]:
        """Where the timer sorts in the index (``ORDER BY fire_at, run_id, timer_id``)."""
        return self.fire_at, self.run_id, self.timer_id

    @classmethod
    def of(cls, record: StartTimer, trace: Carrier = ()) -> ArmedTimer:
        """The timer a ``StartTimer`` record (with the trace context of its headers) arms."""
        return cls(
            record.fire_at, record.run_id, record.timer_id, record.position, record.kind, record.requested_at, trace
        )

    @property
    def row(self) -> tuple[str, str, int, str, int, int, bytes | None]:
        """Its values in ``_UPSERT``'s order."""
        return self.run_id, self.timer_id, self.position, self.kind, self.fire_at, self.requested_at, pack(self.trace)


class TimerIndex:
    """Armed timers of one partition in a SQLite file (WAL), ordered by due time.

    Durability: a transaction is in the WAL once `apply` or `remove_fired` returns, so a killed process
    loses nothing it acknowledged (``synchronous=NORMAL`` only risks the last transactions on an OS
    crash or power loss, and those are the ones whose Kafka offsets may not be committed yet either).

    Each transaction that mirrors changelog writes also stores the changelog's end offset after them
    (`changelog_end`), so an index whose stored offset equals the changelog partition's end reflects it.

    Args:
        path: the SQLite file; created, with its folder, if missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Autocommit mode: transactions are explicit (BEGIN ... COMMIT), never opened implicitly. Used by one thread
        # at a time, not always the one that opened it (a rebuild runs in a worker thread).
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        present = {str(row[1]) for row in self._db.execute("PRAGMA table_info(timers)")}
        for name, kind in _COLUMNS.items():
            if name not in present:  # a file written by an older kflow
                self._db.execute(f"ALTER TABLE timers ADD COLUMN {name} {kind}")

    @property
    def changelog_end(self) -> int | None:
        """The changelog end offset these rows reflect; None for a file never written with a changelog."""
        row = self._db.execute("SELECT end_offset FROM changelog WHERE id = 0").fetchone()
        return None if row is None else int(row[0])

    def apply(
        self, arms: Iterable[ArmedTimer], removals: Iterable[TimerKey] = (), changelog_end: int | None = None
    ) -> None:
        """Upsert ``arms`` and delete ``removals`` (absent keys are ignored) in one transaction.

        Arming is idempotent: the same timer armed twice is one row holding the latest values.
        ``changelog_end`` (when not None) becomes `changelog_end` in the same transaction.
        """
        with self._transaction():
            self._db.executemany(_UPSERT, (t.row for t in arms))
            self._db.executemany(_DELETE, removals)
            self._set_end(changelog_end)

    def remove_fired(self, timers: Iterable[ArmedTimer], changelog_end: int | None = None) -> None:
        """Delete timers that fired, unless re-armed meanwhile with another due time (then the row stays).

        ``changelog_end`` (when not None) becomes `changelog_end` in the same transaction.
        """
        with self._transaction():
            self._db.executemany(_DELETE_FIRED, ((t.run_id, t.timer_id, t.fire_at) for t in timers))
            self._set_end(changelog_end)

    def replace(self, timers: Iterable[ArmedTimer], changelog_end: int) -> None:
        """Make the rows exactly ``timers``, reflecting the changelog up to ``changelog_end`` (a rebuild)."""
        with self._transaction():
            self._db.execute("DELETE FROM timers")
            self._db.executemany(_UPSERT, (t.row for t in timers))
            self._set_end(changelog_end)

    def present(self, keys: Iterable[TimerKey]) -> list[TimerKey]:
        """Those of ``keys`` that are armed, in the given order."""
        return [key for key in keys if self._db.execute(_HOLDS, key).fetchone() is not None]

    def holding(self, timers: Iterable[ArmedTimer]) -> list[ArmedTimer]:
        """Those of ``timers`` still armed with the same due time (not re-armed or cancelled meanwhile)."""
        held = []
        for timer in timers:
            row = self._db.execute(_HOLDS, timer.key).fetchone()
            if row is not None and int(row[0]) == timer.fire_at:
                held.append(timer)
        return held

    def earliest(self, limit: int) -> list[ArmedTimer]:
        """The ``limit`` soonest timers, in due order."""
        rows = self._db.execute(_EARLIEST, (limit,)).fetchall()
        return [
            ArmedTimer(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), int(r[5] or 0), unpack(r[6]))
            for r in rows
        ]

    def count(self) -> int:
        """How many timers are armed."""
        (count,) = self._db.execute("SELECT COUNT(*) FROM timers").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the file (later calls fail)."""
        self._db.close()

    def _set_end(self, changelog_end: int | None) -> None:
        if changelog_end is not None:
            self._db.execute(_SET_END, (changelog_end,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


class TimerHead:
    """The soonest timers of one `TimerIndex`, at most ``capacity`` of them, in due order.

    Invariant: every timer of the index that sorts at or before the horizon is in the head (or is being
    fired); after a load that returned fewer rows than asked there is no horizon: the head holds them
    all. So the head's first timer is always the index's first, and only an empty head with a horizon
    needs a refill from SQLite.

    Args:
        capacity: most timers kept in memory (at least 1).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"head capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        # A sorted list, not a heap: cancels and re-arms remove arbitrary entries and an overflow drops
        # the latest one, both O(capacity) memmoves here, which is cheap for a bounded head.
        self._timers: list[ArmedTimer] = []
        self._by_key: dict[TimerKey, ArmedTimer] = {}
        self._horizon: tuple[int, str, str] | None = None
        self._complete = True

    def __len__(self) -> int:
        return len(self._timers)

    @property
    def needs_refill(self) -> bool:
        """True when the head is empty but the index may still hold timers beyond the horizon."""
        return not self._timers and not self._complete

    @property
    def next_fire_at(self) -> int | None:
        """Due time of the soonest timer in the head, None when it is empty."""
        return self._timers[0].fire_at if self._timers else None

    def load(self, timers: list[ArmedTimer]) -> None:
        """Replace the content with ``index.earliest(capacity)``."""
        self._timers = sorted(timers)
        self._by_key = {t.key: t for t in self._timers}
        self._complete = len(self._timers) < self.capacity
        self._horizon = None if self._complete else self._timers[-1].due_order

    def offer(self, timer: ArmedTimer) -> bool:
        """Track a timer just armed in the index; True if it became the soonest one (wake the scheduler).

        A re-armed timer replaces its previous entry; a timer beyond the horizon stays in SQLite only.
        """
        self.discard(timer.key)
        if self._horizon is not None and timer.due_order > self._horizon:
            return False
        insort(self._timers, timer)
        self._by_key[timer.key] = timer
        if len(self._timers) > self.capacity:
            dropped = self._timers.pop()
            del self._by_key[dropped.key]
            self._horizon, self._complete = self._timers[-1].due_order, False
        return self._timers[0] is timer

    def discard(self, key: TimerKey) -> None:
        """Forget a timer (cancelled, or re-armed); unknown keys are ignored."""
        timer = self._by_key.pop(key, None)
        if timer is not None:
            del self._timers[bisect_left(self._timers, timer)]

    def take_due(self, now_ms: int, limit: int) -> list[ArmedTimer]:
        """Remove and return up to ``limit`` timers due at ``now_ms``, soonest first."""
        count = min(limit, bisect_right(self._timers, now_ms, key=_fire_at))
        due, self._timers[:count] = self._timers[:count], []
        for timer in due:
            del self._by_key[timer.key]
        return due


def _fire_at(timer: ArmedTimer) -> int:
    return timer.fire_at
