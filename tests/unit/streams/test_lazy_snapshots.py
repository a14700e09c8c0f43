"""Adoption holds each RunSnapshot as read and decodes it at the run's first use (no server)."""

from __future__ import annotations

import logging

import pytest
from partition_samples import RECORDS, REGISTRY, result, start

from schemas import Codec
from streams.processors import PartitionLogic

LATER = 10 + 60_000


def _snapshot(run_id: str) -> tuple[PartitionLogic, bytes]:
    live = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, snapshot_after=1)
    live.process(run_id.encode(), start(run_id), 0, 10)
    live.observe(run_id, 0)
    live.history_end = 10
    [snapshot] = live.snapshot_outputs(LATER)
    return live, snapshot.value


def test_a_restored_snapshot_is_decoded_only_when_its_run_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    live, value = _snapshot("old")
    restored = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)
    decoded: list[str] = []
    real = Codec.decode
    monkeypatch.setattr(Codec, "decode", lambda self, data: decoded.append("x") or real(self, data))
    restored.restore_state(b"old", value)
    assert decoded == [] and "old" in restored.histories and restored.snapshots_restored == 1
    assert restored.histories.snapshot_bytes == len(value) and restored.checkpoint() == 0
    outputs = restored.process(b"old", result("old", 0, "v"), 1, 12)  # its first input: decoded now, and it goes on
    assert decoded and "history" in {o.topic for o in outputs} and restored.histories.snapshot_bytes == 0
    assert restored.histories.length("old") == live.histories.length("old") + 2


def test_an_unreadable_snapshot_drops_its_run_at_first_use(caplog: pytest.LogCaptureFixture) -> None:
    restored = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)
    bogus = RECORDS.codec.encode("StateCheckpoint", {"partition": 0, "history_offset": 1, "written_at": 1})
    restored.histories.hold_snapshot("bad", bogus)  # not a RunSnapshot: found out when the run is used
    with caplog.at_level(logging.ERROR):
        assert restored.histories.length("bad") == 0
    assert "bad" not in restored.histories and "snapshot of run bad skipped" in caplog.text
    assert restored.histories.snapshot_bytes == 0


def test_a_marker_or_a_tombstone_after_a_snapshot_drops_it_undecoded() -> None:
    _, value = _snapshot("old")
    restored = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100)
    restored.restore_state(b"old", value)
    restored.restore_state(b"old", None)
    assert "old" not in restored.histories and restored.histories.snapshot_bytes == 0


def test_snapshots_past_the_budget_are_decoded_at_once_and_the_budget_holds() -> None:
    _, value = _snapshot("old")
    restored = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, history_bytes=len(value) + 10)
    restored.restore_state(b"a", value)
    assert restored.histories.snapshot_bytes == len(value)  # within the budget: held as read
    restored.restore_state(b"b", value)  # would exceed it: decoded now, and the least recently used goes to disk
    store = restored.histories
    assert store.snapshot_bytes == len(value) and store.held_bytes + store.snapshot_bytes <= len(value) + 10
    assert store.length("b") == store.length("a") == 2  # both whole (the key names the run the events are read as)
