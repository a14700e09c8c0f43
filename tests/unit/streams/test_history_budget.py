"""The running runs' histories of a partition stay within their byte budget (KFLOW_LIVE_HISTORY_BYTES): the least
recently used go to local disk, and a run whose history is there goes on exactly as before (no Kafka)."""

from __future__ import annotations

from partition_samples import RECORDS, REGISTRY, reason, result, start, topics

from engine import runtime
from streams.processors import PartitionLogic

RUN_BYTES = 1_000  # a started run's two events ("twice" with a 300-character argument) take about this much


def part(history_bytes: int | None, cache_size: int = 100) -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, cache_size, history_bytes=history_bytes)


def history_outputs(outputs: list) -> list[bytes]:  # type: ignore[type-arg]
    return [o.value for o in outputs if o.topic == "history"]


def started(logic: PartitionLogic, run_id: str) -> list[bytes]:
    return history_outputs(logic.process(run_id.encode(), start(run_id, "twice", "y" * 300), 0, 10))


def test_a_history_counts_its_encoded_events_and_the_budget_holds_after_every_input() -> None:
    logic = part(3 * RUN_BYTES)
    raws = started(logic, "r0")
    store = logic.histories
    overhead = store.size("r0") - sum(len(raw) for raw in raws)
    assert store.size("r0") < RUN_BYTES and overhead > 0 and overhead % len(raws) == 0  # the same per event
    assert store.held_bytes == store.size("r0") and store.raw("r0") == raws  # kept as written to the topic
    for n in range(1, 10):
        started(logic, f"r{n}")
        assert store.held_bytes <= 3 * RUN_BYTES
    assert len(store) == 10 and store.evictions >= 6 and store.peak_bytes <= 3 * RUN_BYTES
    assert [store.in_memory(f"r{n}") for n in (0, 9)] == [False, True]  # least recently used first
    assert store.held_bytes == sum(store.size(f"r{n}") for n in range(10) if store.in_memory(f"r{n}"))


def test_runs_whose_history_went_to_disk_go_on_and_finish_as_before() -> None:
    for cache_size in (100, 0):  # live runs kept (appended on disk), or replayed from the disk copy
        logic, unbounded = part(2 * RUN_BYTES, cache_size), part(None, cache_size)
        for n in range(6):
            assert started(logic, f"r{n}") == started(unbounded, f"r{n}")
        assert not logic.histories.in_memory("r0") and logic.histories.evictions > 0
        for offset, position in enumerate((0, 1), start=1):
            outputs = logic.process(b"r0", result("r0", position, "v"), offset, 20)
            expected = unbounded.process(b"r0", result("r0", position, "v"), offset, 20)
            assert [(o.topic, o.value) for o in outputs] == [(o.topic, o.value) for o in expected]
        assert logic.finished == {"r0": "completed"} and "r0" not in logic.histories
        assert logic.histories.held_bytes <= 2 * RUN_BYTES
        if cache_size == 0:
            assert logic.replays == 2 and logic.histories.reads == 1  # then it was in memory again


def test_a_history_read_back_from_disk_counts_in_memory_again_as_the_most_recently_used() -> None:
    logic = part(2 * RUN_BYTES, cache_size=0)
    for n in range(4):
        started(logic, f"r{n}")
    assert not logic.histories.in_memory("r0")
    logic.process(b"r0", result("r0", 0, "v"), 1, 20)  # replayed from disk, then the new events appended
    assert logic.histories.in_memory("r0") and not logic.histories.in_memory("r2")
    assert [e.seq for e in logic.histories["r0"]] == [1, 2, 3, 4]


def test_an_input_parked_for_an_oversized_output_is_undone_on_disk_too() -> None:
    logic = part(1)  # nothing stays in memory: every history is on disk
    logic.process(b"w", start("w", "wide", 600_000), 0, 1)
    before = list(logic.histories["w"])
    assert not logic.histories.in_memory("w") and logic.histories.held_bytes == 0
    outputs = logic.process(b"w", result("w", 0, 1), 1, 2)
    assert topics(outputs) == ["dlq"] and "too large" in reason(outputs[0])
    assert logic.histories["w"] == before and logic.histories.length("w") == len(before)


def test_a_restore_with_a_small_budget_holds_the_same_histories() -> None:
    live = part(None)
    written: list[bytes] = []
    for n in range(8):
        written += started(live, f"r{n}")
        written += history_outputs(live.process(f"r{n}".encode(), result(f"r{n}", 0, "v"), 1, 11))
    restored = part(3 * RUN_BYTES)
    for offset, raw in enumerate(written):
        event = RECORDS.decode(raw)
        assert isinstance(event, runtime.HISTORY_EVENT_TYPES)
        restored.restore(event, offset, raw)  # type: ignore[arg-type]
        assert restored.histories.held_bytes <= 3 * RUN_BYTES
    assert restored.histories.evictions > 0
    assert {run_id: restored.histories.raw(run_id) for run_id in restored.histories} == {
        run_id: live.histories.raw(run_id) for run_id in live.histories
    }
    assert dict(restored.histories) == dict(live.histories)


def test_a_history_on_disk_is_snapshotted_from_there_and_close_drops_it() -> None:
    logic = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, snapshot_after=1, history_bytes=1)
    raws = started(logic, "old")
    logic.observe("old", 0)
    logic.history_end = 10
    [snapshot] = logic.snapshot_outputs(10 + 60_000)
    assert RECORDS.codec.decode(snapshot.value).record["events"] == raws
    logic.close()
    assert len(logic.histories) == 0 and logic.histories.held_bytes == 0
