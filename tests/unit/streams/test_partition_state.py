"""The orchestrator's per-partition state without Kafka: run markers, forgetting, restore, checkpoints, schedules."""

from __future__ import annotations

from partition_samples import RECORDS, REGISTRY, finish, logic, reason, result, start, topics

import engine
from engine import runtime
from engine.runtime import CallArgs, StartWorkflow
from schemas import Codec
from streams.processors import PartitionLogic


def test_a_finished_run_leaves_a_marker_on_the_state_topic_of_its_own_partition() -> None:
    part = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 3, 100)
    state = [o for o in finish(part, "r1") if o.topic == "state"]
    assert len(state) == 1 and state[0].key == b"r1" and state[0].partition == 3
    marker = Codec().decode(state[0].value).record
    assert marker == {
        "run_id": "r1",
        "workflow_name": "twice",
        "status": "completed",
        "next_run_id": None,
        "finished_at": 12,
        "idempotency_key": None,
    }


def test_forget_drops_a_finished_run_with_a_tombstone_and_later_records_are_dead_letters() -> None:
    part = logic()
    finish(part, "r1")
    forget = RECORDS.encode(runtime.ForgetRun(run_id="r1", reason="old", requested_at=20))
    tombstone = part.process(b"r1", forget, 10, 20)
    assert [(o.topic, o.key, o.value) for o in tombstone] == [("state", b"r1", None)]
    assert "r1" not in part.finished
    again = part.process(b"r1", forget, 11, 21)  # nothing left to forget, and the answer says so (kflow compact)
    assert topics(again) == ["dlq"] and "is not a finished run of this partition" in reason(again[0])
    assert "r1" not in part.finished
    late = part.process(b"r1", result("r1", 1, "v"), 12, 22)
    assert topics(late) == ["dlq"] and "no run r1" in reason(late[0])


def test_forgetting_a_running_run_is_refused() -> None:
    part = logic()
    part.process(b"r1", start("r1"), 0, 10)
    refused = part.process(b"r1", RECORDS.encode(runtime.ForgetRun(run_id="r1", requested_at=1)), 1, 11)
    assert topics(refused) == ["dlq"] and "still running" in reason(refused[0])
    assert "r1" in part.histories


def test_a_cancel_for_a_run_that_continued_as_new_goes_to_its_successor() -> None:
    part = logic()
    part.restore_state(
        b"old",
        Codec().encode(
            "RunMarker",
            {
                "run_id": "old",
                "workflow_name": "twice",
                "status": "continued_as_new",
                "next_run_id": "new",
                "finished_at": 5,
            },
        ),
    )
    cancel = RECORDS.encode(runtime.CancelWorkflow(run_id="old", reason="stop", requested_at=7))
    forwarded = part.process(b"old", cancel, 0, 10)
    assert [(o.topic, o.key) for o in forwarded] == [("inbox", b"new")]
    assert RECORDS.decode(forwarded[0].value) == runtime.CancelWorkflow(run_id="new", reason="stop", requested_at=7)


def test_restore_from_state_markers_tombstones_and_checkpoint() -> None:
    codec = Codec()
    part = logic()
    marker = {"run_id": "a", "workflow_name": "twice", "status": "failed", "next_run_id": None, "finished_at": 1}
    assert part.restore_state(b"a", codec.encode("RunMarker", marker)) is None
    assert part.restore_state(b"b", codec.encode("RunMarker", {**marker, "run_id": "b"})) is None
    assert part.restore_state(b"b", None) is None  # forgotten
    checkpoint = codec.encode("StateCheckpoint", {"partition": 0, "history_offset": 42, "written_at": 1})
    assert part.restore_state(b"checkpoint", checkpoint) == 42
    assert part.finished == {"a": "failed"}
    assert part.process(b"a", start("a"), 0, 10) == []  # a finished run is not started again


def test_the_checkpoint_is_the_first_offset_of_the_oldest_running_run() -> None:
    part = logic()
    assert part.checkpoint() == 0
    part.process(b"old", start("old"), 0, 10)
    part.observe("old", 100)
    part.observe("old", 101)
    part.process(b"new", start("new"), 1, 11)
    part.observe("new", 102)
    assert part.checkpoint() == 100
    part.process(b"old", result("old", 0, "v"), 2, 12)
    part.process(b"old", result("old", 1, "v"), 3, 13)  # old finishes: its marker covers its history
    part.observe("old", 105)  # acknowledgements may arrive after the run retired
    assert part.checkpoint() == 102
    part.process(b"new", result("new", 0, "v"), 4, 14)
    part.process(b"new", result("new", 1, "v"), 5, 15)
    part.observe("new", 110)
    assert part.checkpoint() == 111  # nothing runs: restore starts at the end


def test_runs_restored_finished_without_a_marker_get_one() -> None:
    live = logic()
    events = [o for o in finish(live, "done") if o.topic == "history"]
    restored = logic()
    for offset, out in enumerate(events):
        restored.restore(RECORDS.decode(out.value), offset)  # type: ignore[arg-type]
    assert restored.history_end == len(events)
    markers = restored.settle_unmarked(checkpointed=False)  # topics older than the state topic
    assert [(o.topic, o.key) for o in markers] == [("state", b"done")]
    assert Codec().decode(markers[0].value).record["status"] == "completed"
    assert restored.finished == {"done": "completed"} and restored.unmarked == []


def test_above_a_checkpoint_a_finished_run_without_marker_was_forgotten_and_stays_forgotten() -> None:
    live = logic()
    events = [o for o in finish(live, "done") if o.topic == "history"]
    restored = logic()
    for offset, out in enumerate(events):
        restored.restore(RECORDS.decode(out.value), offset)  # type: ignore[arg-type]
    assert restored.settle_unmarked(checkpointed=True) == []
    assert "done" not in restored.finished
    late = restored.process(b"done", result("done", 1, "v"), 9, 20)
    assert topics(late) == ["dlq"] and "no run done" in reason(late[0])


def test_a_forgotten_run_with_an_idempotency_key_keeps_its_id_taken() -> None:
    part = logic()
    keyed = RECORDS.encode(
        StartWorkflow(
            run_id="k1", workflow_name="twice", args=CallArgs(("v",), {}), idempotency_key="order-1", requested_at=1
        )
    )
    part.process(b"k1", keyed, 0, 10)
    part.process(b"k1", result("k1", 0, "v"), 1, 11)
    finished = part.process(b"k1", result("k1", 1, "v"), 2, 12)
    assert Codec().decode(finished[-1].value).record["idempotency_key"] == "order-1"
    forgotten = part.process(b"k1", RECORDS.encode(runtime.ForgetRun(run_id="k1", requested_at=20)), 3, 20)
    assert [(o.topic, o.key) for o in forgotten] == [("state", b"k1")]
    assert Codec().decode(forgotten[0].value).record["status"] == "forgotten"
    again = part.process(b"k1", keyed, 4, 30)  # the key reused after compaction
    assert topics(again) == ["dlq"] and "was compacted" in reason(again[0]) and "new key" in reason(again[0])
    restored = logic()
    restored.restore_state(b"k1", forgotten[0].value)
    assert restored.finished == {"k1": "forgotten"} and topics(restored.process(b"k1", keyed, 0, 40)) == ["dlq"]


def test_a_schedule_lives_on_its_partition_writes_its_state_and_starts_runs_on_theirs() -> None:
    import json as _json

    part = PartitionLogic(REGISTRY, RECORDS, "p.inbox", 1, 100)
    spec = _json.dumps(engine.ScheduleSpec(interval="1m").to_wire())
    create = runtime.ScheduleCommand(
        schedule_id="nightly",
        action="create",
        request_id="c1",
        workflow_name="twice",
        args=CallArgs(("v",), {}),
        spec=spec,
        requested_at=1,
    )
    now = 1_800_000_000_000
    created = part.process(b"schedule:nightly", RECORDS.encode(create), 0, now)
    assert [(o.topic, o.key, o.partition) for o in created] == [
        ("state", b"schedule:nightly", 1),
        ("timers", b"schedule:nightly", None),
    ]
    state = RECORDS.decode(created[0].value)
    assert isinstance(state, runtime.ScheduleState) and part.schedules == {"schedule:nightly": state}
    timer = RECORDS.decode(created[1].value)
    assert isinstance(timer, runtime.StartTimer)
    fired = runtime.TimerFired(
        run_id="schedule:nightly",
        timer_id=timer.timer_id,
        position=0,
        kind="schedule",
        fire_at=timer.fire_at,
        fired_at=timer.fire_at,
    )
    outputs = part.process(b"schedule:nightly", RECORDS.encode(fired), 1, timer.fire_at + 2)
    run_id = engine.fire_run_id("nightly", timer.fire_at)
    assert [(o.topic, o.key) for o in outputs] == [
        ("state", b"schedule:nightly"),
        ("inbox", run_id.encode()),
        ("timers", b"schedule:nightly"),
    ]
    # the started run's completion comes back to the schedule (parent_run_id) and frees it
    done = runtime.RunFinished(
        run_id=run_id,
        workflow_name="twice",
        status="completed",
        result="v",
        parent_run_id="schedule:nightly",
        started_at=1,
        finished_at=2,
    )
    assert part.schedules["schedule:nightly"].running == (run_id,)
    part.process(b"schedule:nightly", RECORDS.encode(done), 2, timer.fire_at + 9)
    assert part.schedules["schedule:nightly"].running == ()
    # a restore from the state topic gives the same schedules back; a tombstone deletes
    restored = logic()
    restored.restore_state(b"schedule:nightly", RECORDS.encode(part.schedules["schedule:nightly"]))
    assert restored.schedules == part.schedules
    restored.restore_state(b"schedule:nightly", None)
    assert restored.schedules == {}
    # a refused command is a dead letter with the reason; the wrong key too
    create_again = runtime.ScheduleCommand(
        schedule_id="nightly", action="create", request_id="c2", workflow_name="twice", spec=spec, requested_at=3
    )
    again = part.process(b"schedule:nightly", RECORDS.encode(create_again), 3, now)
    assert topics(again) == ["dlq"] and "exists already" in reason(again[0])
    wrong = part.process(b"nightly", RECORDS.encode(create), 4, now)
    assert topics(wrong) == ["dlq"] and "is not the run id" in reason(wrong[0])


def test_a_schedule_resending_the_start_of_a_finished_run_is_told_it_finished() -> None:
    part = logic()
    finish(part, "r1")
    start_again = StartWorkflow(
        run_id="r1", workflow_name="twice", args=CallArgs(("v",), {}), parent_run_id="schedule:s", requested_at=1
    )
    outputs = part.process(b"r1", RECORDS.encode(start_again), 9, 20)
    assert [(o.topic, o.key) for o in outputs] == [("inbox", b"schedule:s")]  # no second completion
    told = RECORDS.decode(outputs[0].value)
    assert isinstance(told, runtime.RunFinished) and told.status == "completed" and told.parent_run_id == "schedule:s"
