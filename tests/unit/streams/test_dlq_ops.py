"""``kflow dlq``'s pure parts: addresses, filters, what a redrive takes or skips, the views; and the partition-count
check's verdict (no Kafka)."""

from __future__ import annotations

import json

import pytest
from partition_samples import RECORDS, start

from engine.runtime import CallArgs, StartWorkflow
from schemas import RecordCodec
from streams import InternalTopicError, PartitionCountError, Topics, partition_mismatch
from streams.cli import exit_status, main
from streams.ops import (
    DeadLetterView,
    DlqAddress,
    OpsError,
    Redrive,
    decoded_record,
    dlq_show_json,
    dlq_show_text,
    dlq_table,
    letter_json,
    parse_address,
    parse_filter,
    plan_redrive,
    record_type,
)

TOPICS = Topics("p")


def letter(
    value: bytes,
    *,
    key: bytes | None = b"r1",
    topic: str = "p.inbox",
    reason: str = "no workflow named 'late' is registered",
    offset: int = 3,
    redrive: Redrive | None = None,
) -> DeadLetterView:
    return DeadLetterView(
        address=DlqAddress(1, offset),
        failed_at=1_700_000_000_000,
        topic=topic,
        partition=0,
        offset=17,
        key=key,
        value=value,
        reason=reason,
        error_type="engine.UnknownWorkflowError",
        record_type=record_type(value),
        redrive=redrive,
    )


def test_addresses_are_partition_colon_offset_or_an_offset_alone_on_one_partition() -> None:
    assert parse_address("2:40", 4) == DlqAddress(2, 40) and str(DlqAddress(2, 40)) == "2:40"
    assert parse_address("40", 1) == DlqAddress(0, 40)
    with pytest.raises(OpsError, match="the dlq has 4 partitions, give PARTITION:OFFSET"):
        parse_address("40", 4)
    for bad in ("x:1", "1:", "4:0", "-1:2", "0:-3"):
        with pytest.raises(OpsError, match="dead letter address"):
            parse_address(bad, 4)


def test_filters_name_a_field_or_match_any() -> None:
    dead = letter(start("r1", "late"))
    assert parse_filter("type=startworkflow").matches(dead) and not parse_filter("type=Start").matches(dead)
    assert parse_filter("reason=IS REGISTERED").matches(dead) and not parse_filter("reason=too large").matches(dead)
    assert parse_filter("run=r1").matches(dead) and parse_filter("topic=inbox").matches(dead)
    assert parse_filter("error=UnknownWorkflow").matches(dead)
    assert parse_filter("late").matches(dead) and not parse_filter("nothing like it").matches(dead)
    assert parse_filter("colour=red").field is None  # not a field: plain text, the '=' included


def test_a_redrive_takes_inbox_records_not_redriven_yet_and_says_why_it_skips_the_others() -> None:
    fresh = letter(start("r1", "late"), offset=1)
    done = letter(start("r2", "late"), offset=2, redrive=Redrive(1_700_000_000_500, "p.inbox[0]@90", DlqAddress(1, 9)))
    task = letter(b"\xc3\x01junk", topic="p.tasks", offset=3)
    keyless = letter(start("r3", "late"), key=None, offset=4)
    child = StartWorkflow(
        run_id="kid",
        workflow_name="late",
        args=CallArgs((), {}),
        parent_run_id="mom",
        parent_position=1,
        requested_at=1,
    )
    scheduled = StartWorkflow(
        run_id="s1", workflow_name="late", args=CallArgs((), {}), parent_run_id="schedule:n", requested_at=1
    )
    kid, from_schedule = letter(RECORDS.encode(child), offset=5), letter(RECORDS.encode(scheduled), offset=6)
    chosen, skipped = plan_redrive([fresh, done, task, keyless, kid, from_schedule], [], TOPICS)
    assert chosen == [fresh, from_schedule]
    why = {dead.address.offset: text for dead, text in skipped}
    assert why[2].startswith("redriven already") and "p.inbox[0]@90" in why[2]
    assert why[3].startswith("read from p.tasks: only p.inbox records are redriven")
    assert "no key" in why[4] and "child of run mom" in why[5]
    only_r1, _ = plan_redrive([fresh, done], [parse_filter("run=r1")], TOPICS)
    assert only_r1 == [fresh]


def test_the_views_show_the_original_decoded_without_unpickling() -> None:
    dead = letter(start("r1", "late", {"order": 7}))
    line = dlq_table([dead]).splitlines()[1]
    assert line.split()[:5] == ["1:3", "2023-11-14", "22:13:20", "p.inbox[0]@17", "StartWorkflow"]
    assert line.endswith("no workflow named 'late' is registered") and " - " in line
    record = decoded_record(dead.value)
    assert record["type"] == "StartWorkflow"
    assert record["fields"]["args"] == {"json": {"args": [{"order": 7}], "kwargs": {}}}  # type: ignore[index]
    pickled = RecordCodec(payload_codec="cloudpickle", secret=b"k").encode(
        StartWorkflow(run_id="r1", workflow_name="late", args=CallArgs((1,), {}), requested_at=1)
    )
    assert "not decoded" in json.dumps(decoded_record(pickled)["fields"]["args"])  # type: ignore[index]
    text = dlq_show_text(dead)
    assert "from        p.inbox[0]@17" in text and "redriven    no" in text and '"workflow_name"' not in text
    assert any(line.split() == ["workflow_name", '"late"'] for line in text.splitlines())
    assert json.loads(json.dumps(dlq_show_json(dead)))["record"]["fields"]["run_id"] == "r1"
    garbage = dlq_show_text(letter(b"\x00garbage"))
    assert "undecodable:" in garbage and "00 67 61 72" in garbage
    assert letter_json(dead)["redriven"] is None and letter_json(dead)["key"] == "r1"


def test_the_cli_refuses_bad_arguments_before_reaching_kafka(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_BOOTSTRAP", "127.0.0.1:1")  # nothing listens there
    assert main(["dlq", "list", "--since", "last week"]) == 2
    assert "--since 'last week'" in capsys.readouterr().err
    assert main(["dlq", "redrive", "--filter", "reason="]) == 2
    assert capsys.readouterr().err == "kflow: error: --filter 'reason=': nothing to match\n"
    for argv in (["dlq", "list"], ["dlq", "show", "0:1"], ["dlq", "redrive", "--dry-run"]):
        assert main(argv) == 4
        err = capsys.readouterr().err
        assert err.startswith("kflow: error: Kafka at 127.0.0.1:1 is unreachable") and err.count("\n") == 1


def test_differing_partition_counts_are_one_line_naming_every_topic() -> None:
    assert partition_mismatch({"p.inbox": 4, "p.history": 4, "p.tasks": 4}) is None
    assert partition_mismatch({"p.inbox": 4}) is None and partition_mismatch({}) is None
    line = partition_mismatch({"p.inbox": 4, "p.history": 4, "p.tasks": 2, "p.timers": 4, "p.state": 4})
    assert line is not None and "\n" not in line
    assert line.startswith("partition counts differ (p.inbox 4, p.history 4, p.tasks 2, p.timers 4, p.state 4)")
    assert issubclass(PartitionCountError, InternalTopicError)  # reported like TopicDriftError: exit status 1
    assert exit_status(PartitionCountError(line)) == 1
