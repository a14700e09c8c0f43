"""What the orchestrator keeps for one inbox partition, and how it is restored after a move or a restart.

The histories of the runs still running, the status of finished ones (from their ``RunMarker`` on the
compacted state topic), continue-as-new links, schedules, the live-run cache and the restore checkpoint:
the history offset from which reading back the history topic rebuilds every running run.
"""

from __future__ import annotations

import logging
import sys

from engine import runtime
from engine.runtime import HistoryEvent, status_of
from schemas import RecordCodec
from streams._tracing import Carrier
from streams.processors._history_store import EVENT_OVERHEAD, LIVE_HISTORY_BYTES, HistoryStore
from streams.processors._outputs import Output
from streams.processors._run_cache import RunCache
from streams.processors._run_traces import RunTraces

log = logging.getLogger(__name__)

FORGOTTEN = "forgotten"
"""Status of a compacted run whose id came from an idempotency key (kept so the id is never reused)."""
CHECKPOINT_KEY = b"checkpoint"
"""Key of a partition's ``StateCheckpoint`` on the state topic (written to that partition explicitly)."""
SNAPSHOT_AFTER_RECORDS = 10_000
"""A running run whose history starts this many history records before the end gets a ``RunSnapshot``."""
SNAPSHOT_MIN_AGE_MS = 60_000
"""Only runs running at least this long are snapshotted: a burst of short runs finishes before it matters."""
SNAPSHOT_MAX_BYTES = 900_000
"""Largest snapshot written (one Kafka record); a run with a longer history keeps pinning the checkpoint."""


class PartitionState:
    """The state of one inbox partition and its recovery from the state and history topics.

    Args:
        records: codec for engine records.
        partition: the partition number.
        cache_size: how many live runs to keep (0 = replay every time).
        history_bytes: the budget of the running runs' histories in memory (``HistoryStore``; None: unbounded).
    """

    def __init__(
        self,
        records: RecordCodec,
        partition: int,
        cache_size: int = 10_000,
        snapshot_after: int = SNAPSHOT_AFTER_RECORDS,
        snapshot_min_age_ms: int = SNAPSHOT_MIN_AGE_MS,
        history_bytes: int | None = LIVE_HISTORY_BYTES,
    ) -> None:
        self.records = records
        self.partition = partition
        self.snapshot_after = snapshot_after
        self.snapshot_min_age_ms = snapshot_min_age_ms
        self.snapshots_written = 0
        self.snapshots_restored = 0
        self._unsnapshotted: set[str] = set()  # runs whose history was too long for a snapshot (logged once)
        self.histories = HistoryStore(records, history_bytes)  # of the running runs, within a byte budget
        # Finished runs keep only their status: their inputs are ignored, so their events are not needed,
        # and memory stays proportional to the runs still running.
        self.finished: dict[str, str] = {}
        self.successors: dict[str, str] = {}  # continued_as_new run -> its successor (cancels follow the chain)
        self.keyed: set[str] = set()  # finished runs started with an idempotency key (their id is never reused)
        # History offset of the first event of each running run not covered by its snapshot (a snapshotted run
        # is absent until it writes again): the restore checkpoint is their minimum.
        self.first_offsets: dict[str, int] = {}
        self.history_end = 0  # one past the last history offset seen
        # Runs found finished in history without a RunMarker: older topics (no checkpoint yet) — or, above a
        # checkpoint, runs whose marker ForgetRun removed. Their markers, to write or to drop.
        self.unmarked: list[Output] = []
        self.schedules: dict[str, runtime.ScheduleState] = {}  # by key "schedule:{id}"
        self.cache = RunCache(cache_size)
        self.traces = RunTraces()  # the trace context of traced running runs (kept with their history)

    # --- recovery ---------------------------------------------------------------------------

    def restore_state(self, key: bytes, value: bytes | None, trace: Carrier = ()) -> int | None:
        """Apply one record of the state topic (recovery; ``trace``: its trace-context headers); return the history
        offset of a checkpoint."""
        name = key.decode("utf-8", "replace")
        if value is None:  # tombstone: a forgotten run or a deleted schedule
            self.histories.remove(name)
            self.traces.drop(name)
            self.first_offsets.pop(name, None)
            self.finished.pop(name, None)
            self.successors.pop(name, None)
            self.keyed.discard(name)
            self.schedules.pop(name, None)
            return None
        if self.records.codec.name_of(value) == "RunSnapshot":
            # Held as read, decoded at the run's first use (HistoryStore.hold_snapshot): adopting a million sleeping
            # runs decodes none. Covered up to its history_offset: only an event after it holds the checkpoint back.
            self.histories.hold_snapshot(name, value)
            self.first_offsets.pop(name, None)
            self.snapshots_restored += 1
            self.traces.keep(name, trace)
            return None
        decoded = self.records.codec.decode(value)
        record = decoded.record
        if decoded.name == "StateCheckpoint":
            offset = record["history_offset"]
            return offset if isinstance(offset, int) else None
        if decoded.name == "ScheduleState":
            schedule = self.records.decode(value)
            assert isinstance(schedule, runtime.ScheduleState)
            self.schedules[name] = schedule
        if decoded.name == "RunMarker":
            self.histories.remove(name)  # a snapshot of it, written while it ran
            self.traces.drop(name)
            self.first_offsets.pop(name, None)
            self.finished[name] = sys.intern(str(record["status"]))
            if record.get("idempotency_key") is not None and record["status"] != FORGOTTEN:
                self.keyed.add(name)
            if record["next_run_id"]:
                self.successors[name] = str(record["next_run_id"])
        return None

    def restore(
        self, event: HistoryEvent, offset: int | None = None, raw: bytes | None = None, trace: Carrier = ()
    ) -> bool:
        """Add one event read back from the history topic (recovery; ``raw``: its bytes there, ``trace``: its
        trace-context headers, which the run's first event carries); False if it was not needed (a run known
        finished from its marker, or a duplicate by seq)."""
        if offset is not None:
            self.history_end = max(self.history_end, offset + 1)
        if event.run_id in self.finished:
            return False
        if event.run_id not in self.histories:
            if event.seq != 1:  # cannot happen above a checkpoint: its runs all start after it
                log.warning("history of %s starts at seq %d: skipped", event.run_id, event.seq)
                return False
            self.histories.start(event.run_id)
            self.traces.keep(event.run_id, trace)
            if offset is not None:
                self.first_offsets[event.run_id] = offset
        # Invariant: seq is dense from 1, so a seq at or below the length is a duplicate write.
        if event.seq != self.histories.length(event.run_id) + 1:
            return False
        self.histories.append(event.run_id, (event,), None if raw is None else (raw,))
        if offset is not None and event.run_id not in self.first_offsets:  # the first event past its snapshot
            self.first_offsets[event.run_id] = offset
        marker = self._retire_if_finished(event.run_id)
        if marker is not None:
            self.unmarked.append(Output("state", event.run_id.encode(), marker, self.partition))
        return True

    def settle_unmarked(self, checkpointed: bool) -> list[Output]:
        """After reading history: the markers to write for runs found finished without one.

        With a checkpoint, every run that finished above it got its marker in the same transaction, so a
        missing one was removed by ``ForgetRun``: the run is forgotten again, not brought back. Without
        one (topics older than the state topic) the markers are simply missing: write them.
        """
        unmarked, self.unmarked = self.unmarked, []
        if not checkpointed:
            return unmarked
        for out in unmarked:
            run_id = out.key.decode()
            self.finished.pop(run_id, None)
            self.successors.pop(run_id, None)
        return []

    def _retire_if_finished(self, run_id: str) -> bytes | None:
        """Move a run whose history ended to ``finished``; return its encoded ``RunMarker``."""
        last = self.histories.ending(run_id)
        status = None if last is None else status_of(last)
        if last is None or status is None:
            return None
        workflow_name, key, _ = self.histories.started(run_id)
        self.finished[run_id] = status
        next_run_id = last.next_run_id if isinstance(last, runtime.WorkflowContinuedAsNew) else None
        if next_run_id:
            self.successors[run_id] = next_run_id
        self.histories.remove(run_id)
        self.traces.drop(run_id)
        self.first_offsets.pop(run_id, None)
        self.cache.discard(run_id)
        if key is not None:
            self.keyed.add(run_id)
        return self._marker(run_id, workflow_name, status, next_run_id, last.timestamp, key)

    def _marker(
        self,
        run_id: str,
        workflow_name: str,
        status: str,
        next_run_id: str | None,
        finished_at: int,
        idempotency_key: str | None,
    ) -> bytes:
        return self.records.codec.encode(
            "RunMarker",
            {
                "run_id": run_id,
                "workflow_name": workflow_name,
                "status": status,
                "next_run_id": next_run_id,
                "finished_at": finished_at,
                "idempotency_key": idempotency_key,
            },
        )

    def observe(self, run_id: str, offset: int) -> None:
        """Note the history offset a run's event was written at (after delivery)."""
        self.history_end = max(self.history_end, offset + 1)
        if run_id in self.histories and run_id not in self.first_offsets:
            self.first_offsets[run_id] = offset

    def checkpoint(self) -> int:
        """History offset where restoring may start: every event before it belongs to a finished run."""
        return min(self.first_offsets.values(), default=self.history_end)

    def checkpoint_output(self, now_ms: int) -> Output:
        """The ``StateCheckpoint`` record for :meth:`checkpoint`."""
        value = self.records.codec.encode(
            "StateCheckpoint", {"partition": self.partition, "history_offset": self.checkpoint(), "written_at": now_ms}
        )
        return Output("state", CHECKPOINT_KEY, value, self.partition)

    def close(self) -> None:
        """Drop the live runs and the histories, also those on disk (the partition was dropped)."""
        self.cache.clear()
        self.traces.clear()
        self.histories.close()

    def snapshot_outputs(self, now_ms: int) -> list[Output]:
        """``RunSnapshot`` records for the running runs whose history starts more than ``snapshot_after``
        records before the end of the history partition (and that have run for ``snapshot_min_age_ms`` at least),
        so the restore checkpoint can move past them.

        Called before a batch's sends (``history_end`` is then the offset the batch's events start at), in the
        transaction of that batch: a snapshot holds every event of its run, its ``history_offset`` is
        ``history_end``, and the run's later events are read from there on restore.

        Invariant: a snapshotted run leaves ``first_offsets`` (its snapshot covers it; restore reads nothing of it
        below the checkpoint) until it writes an event again, so a run is snapshotted again only once its own
        events since the last snapshot are ``snapshot_after`` records behind. A run that only waits (asleep, on a
        hook) is snapshotted once however long it waits and however many runs wait with it: the bytes written
        for snapshots stay proportional to the history written, not to its square (docs/notes.md #8).
        """
        outputs: list[Output] = []
        behind = self.history_end - self.snapshot_after
        for run_id, first in list(self.first_offsets.items()):
            if first > behind or not self.histories.length(run_id) or run_id in self._unsnapshotted:
                continue
            if now_ms - self.histories.started(run_id)[2] < self.snapshot_min_age_ms:
                continue
            size = self.histories.size(run_id) - EVENT_OVERHEAD * self.histories.length(run_id)
            events = [] if size > SNAPSHOT_MAX_BYTES else self.histories.raw(run_id)  # not read back when too long
            if size > SNAPSHOT_MAX_BYTES:
                self._unsnapshotted.add(run_id)
                log.warning("run %s: history of %d bytes is too long to snapshot; restores read it back", run_id, size)
                continue
            record = {"run_id": run_id, "history_offset": self.history_end, "events": events, "written_at": now_ms}
            value = self.records.codec.encode("RunSnapshot", record)
            outputs.append(Output("state", run_id.encode(), value, self.partition, self.traces.of(run_id)))
            del self.first_offsets[run_id]  # until its next event: observe() notes where that lands
        self.snapshots_written += len(outputs)
        return outputs
