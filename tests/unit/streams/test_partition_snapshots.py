"""Run snapshots on the state topic: one long-lived run must not make every restore read history back to its start."""

from __future__ import annotations

from partition_samples import RECORDS, REGISTRY, result, start

from schemas import Codec
from streams.processors import PartitionLogic

LATER = 10 + 60_000  # the runs start at 10; only runs running for a minute are snapshotted


def part_with(snapshot_after: int) -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, snapshot_after=snapshot_after)


def test_a_run_far_behind_the_end_is_snapshotted_and_the_checkpoint_moves_past_it() -> None:
    live = part_with(snapshot_after=50)
    history = [o for o in live.process(b"old", start("old"), 0, 10) if o.topic == "history"]
    live.observe("old", 7)
    live.history_end = 30
    assert live.snapshot_outputs(LATER) == []  # 23 records behind: not yet
    assert live.checkpoint() == 7
    live.history_end = 100
    assert live.snapshot_outputs(20) == []  # far behind, but running for 10 ms only: it will likely finish soon
    [snapshot] = live.snapshot_outputs(LATER + 1)
    assert (snapshot.topic, snapshot.key, snapshot.partition) == ("state", b"old", 0)
    record = Codec().decode(snapshot.value).record
    assert record["run_id"] == "old" and record["history_offset"] == 100 and record["written_at"] == LATER + 1
    assert record["events"] == [out.value for out in history]  # the events as written to the history topic
    assert live.checkpoint() == 100 and live.snapshots_written == 1 and "old" not in live.first_offsets
    live.history_end = 1_000
    assert live.snapshot_outputs(LATER + 2) == []  # it wrote nothing since: its snapshot still covers it
    assert live.checkpoint() == 1_000
    live.process(b"old", result("old", 0, "v"), 1, LATER + 3)
    live.observe("old", 1_000)  # its next event holds the checkpoint again, from where it landed
    assert live.checkpoint() == 1_000
    live.history_end = 1_049
    assert live.snapshot_outputs(LATER + 4) == []  # that event is 49 records behind: not yet
    live.history_end = 1_050
    assert len(live.snapshot_outputs(LATER + 5)) == 1 and live.snapshots_written == 2


def test_runs_that_only_wait_are_snapshotted_once_however_far_the_history_grows() -> None:
    live = part_with(snapshot_after=10)
    for i in range(50):
        live.process(f"r{i}".encode(), start(f"r{i}"), i, 10)
        live.observe(f"r{i}", i)
    for end in range(100, 10_000, 100):  # the history of other partitions' runs, of new runs, grows meanwhile
        live.history_end = end
        live.snapshot_outputs(LATER + end)
    assert live.snapshots_written == 50  # not 50 per 10 records: that would be quadratic in the runs waiting
    assert live.checkpoint() == 9_900


def test_a_restore_from_the_snapshot_needs_only_the_history_after_it_and_drops_duplicates() -> None:
    live = part_with(snapshot_after=10)
    first = [o for o in live.process(b"old", start("old"), 0, 10) if o.topic == "history"]
    live.observe("old", 0)
    live.history_end = 40
    [snapshot] = live.snapshot_outputs(LATER)
    later = [o for o in live.process(b"old", result("old", 0, "v"), 1, 12) if o.topic == "history"]

    restored = part_with(snapshot_after=10)
    restored.restore_state(b"old", snapshot.value)
    assert restored.snapshots_restored == 1 and "old" not in restored.first_offsets
    # The history from the snapshot's offset on: an event the snapshot already holds, then the newer ones.
    for offset, out in enumerate([first[-1], *later], start=40):
        restored.restore(RECORDS.decode(out.value), offset)  # type: ignore[arg-type]
    assert restored.histories["old"] == live.histories["old"]
    assert restored.checkpoint() == 41  # its first event past the snapshot holds the checkpoint, not the snapshot
    finished = restored.process(b"old", result("old", 1, "v"), 2, 13)  # the restored run goes on
    assert "history" in {o.topic for o in finished} and restored.finished == {"old": "completed"}


def test_the_run_marker_replaces_its_snapshot_and_a_tombstone_drops_it() -> None:
    live = part_with(snapshot_after=1)
    live.process(b"old", start("old"), 0, 10)
    live.observe("old", 0)
    live.history_end = 5
    [snapshot] = live.snapshot_outputs(LATER)
    live.process(b"old", result("old", 0, "v"), 1, 12)
    marker = next(o for o in live.process(b"old", result("old", 1, "v"), 2, 13) if o.topic == "state")

    restored = part_with(snapshot_after=1)
    restored.restore_state(b"old", snapshot.value)
    restored.restore_state(b"old", marker.value)
    assert "old" not in restored.histories and restored.finished == {"old": "completed"}
    again = part_with(snapshot_after=1)
    again.restore_state(b"old", snapshot.value)
    again.restore_state(b"old", None)
    assert "old" not in again.histories and again.checkpoint() == 0
