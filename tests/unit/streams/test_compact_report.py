"""``kflow compact`` without servers: the retention argument, the report's sums and texts, the marker size
estimate, and how ``runs show`` / ``runs events`` present a compacted run."""

from __future__ import annotations

import json

import pytest

from schemas import RecordCodec
from storage import FinishedRun, HistorySize, RunRow
from streams import Topics
from streams import ops as _ops
from streams.cli import compact_report_json, compact_report_text
from streams.ops import CompactedRun, CompactReport, marker_size, parse_older_than

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


@pytest.mark.parametrize(
    ("text", "ms"),
    [("7d", 604_800_000), ("12h", 43_200_000), ("30m", 1_800_000), ("0", 0), ("0s", 0), ("1h30m", 5_400_000)],
)
def test_older_than_takes_a_duration_or_zero(text: str, ms: int) -> None:
    assert parse_older_than(text) == ms


@pytest.mark.parametrize("text", ["soon", "", "7", "-1d", "7 days"])
def test_a_bad_older_than_is_an_ops_error(text: str) -> None:
    with pytest.raises(_ops.OpsError, match=r"--older-than .*expected a duration such as 7d"):
        parse_older_than(text)


def test_the_report_sums_forgotten_runs_and_purged_histories() -> None:
    report = CompactReport(cutoff_ms=T0, dry_run=False)
    report = report.add(CompactedRun("a", "w", "completed", T0 - 1, True, HistorySize(3, 300)), 60)
    report = report.add(CompactedRun("b", "w", "failed", T0 - 1, True, None), 61)  # history kept
    report = report.add(CompactedRun("c", "w", "failed", T0 - 1, False, HistorySize(0, 0)), 62)  # purge only
    assert report == CompactReport(
        cutoff_ms=T0,
        dry_run=False,
        runs=2,
        histories_purged=2,
        events_purged=3,
        cassandra_bytes_purged=300,
        state_bytes_tombstoned=121,
    )


def test_the_marker_estimate_is_the_key_plus_an_equivalent_run_marker() -> None:
    records = RecordCodec()
    run = FinishedRun("r-1", "order", "continued_as_new", T0, next_run_id="r-2")
    size = marker_size(records, run)
    value = records.codec.encode(
        "RunMarker",
        {
            "run_id": "r-1",
            "workflow_name": "order",
            "status": "continued_as_new",
            "next_run_id": "r-2",
            "finished_at": T0,
            "idempotency_key": None,
        },
    )
    assert size == len(b"r-1") + len(value)
    assert records.codec.decode(value).record["next_run_id"] == "r-2"
    assert marker_size(records, FinishedRun("r-1", "order", "completed", T0)) < size  # null successor


def test_the_text_report_says_what_was_reclaimed_or_would_be() -> None:
    topics = Topics("p")
    done = CompactReport(
        cutoff_ms=T0,
        dry_run=False,
        runs=1,
        histories_purged=1,
        events_purged=1234,
        cassandra_bytes_purged=56789,
        state_bytes_tombstoned=60,
    )
    assert compact_report_text(done, topics, purge_history=True).splitlines() == [
        "compacted 1 run finished before 2023-11-14 22:13:20 UTC: ForgetRun sent to p.inbox, about 60 bytes of "
        "run markers on p.state for log compaction to reclaim",
        "history: 1,234 events (56,789 bytes) of 1 run purged from Cassandra",
    ]
    dry = CompactReport(cutoff_ms=T0, dry_run=True, runs=2)
    lines = compact_report_text(dry, topics, purge_history=False).splitlines()
    assert lines[0].startswith(
        "dry run: would compact 2 runs finished before 2023-11-14 22:13:20 UTC: ForgetRun to p.inbox"
    )
    assert lines[1] == "history: kept in Cassandra (--purge-history deletes it)"


def test_the_json_report_lists_run_ids_only_in_a_dry_run() -> None:
    listed = [CompactedRun("a", "w", "completed", T0 - 1, True, None)]
    data = compact_report_json(CompactReport(cutoff_ms=T0, dry_run=True, runs=1), 7_000, listed)
    assert data["run_ids"] == ["a"] and data["cutoff"] == "2023-11-14 22:13:20 UTC"
    assert json.loads(json.dumps(data))["older_than_ms"] == 7_000
    assert "run_ids" not in compact_report_json(CompactReport(cutoff_ms=T0, dry_run=False, runs=1), 0, listed)


def _fields(text: str) -> dict[str, str]:
    return {line[:16].strip(): line[16:] for line in text.splitlines() if line and line[:1] != " "}


def test_show_reports_when_a_run_was_compacted_and_whether_its_history_was_purged() -> None:
    base = RunRow("r", "order", "completed", started_at=T0, finished_at=T0 + 1000, last_seq=5)
    fields = _fields(_ops.show_text(_ops.RunView(base, (base,), ()), now_ms=T0))
    assert "compacted" not in fields and fields["events"] == "5 (kflow runs events r)"
    kept = RunRow("r", "order", "completed", started_at=T0, last_seq=5, compacted_at=T0 + 60_000)
    assert _fields(_ops.show_text(_ops.RunView(kept, (kept,), ()), now_ms=T0))["compacted"] == (
        "2023-11-14 22:14:20 UTC"
    )
    purged = RunRow("r", "order", "completed", started_at=T0, last_seq=5, compacted_at=T0 + 60_000, history_purged=True)
    fields = _fields(_ops.show_text(_ops.RunView(purged, (purged,), ()), now_ms=T0))
    assert fields["compacted"] == "2023-11-14 22:14:20 UTC (history purged)"
    assert fields["events"] == "5 (history purged)"
    assert json.loads(_ops.show_json(_ops.RunView(purged, (purged,), ())))["history_purged"] is True


def test_events_of_a_purged_run_say_so() -> None:
    purged = RunRow("r", "order", "completed", last_seq=5, compacted_at=T0, history_purged=True)
    assert _ops.purged_note(purged) == (
        "the history of run r (5 events) was purged by kflow compact at "
        "2023-11-14 22:13:20 UTC; its outcome remains in kflow runs show r"
    )
    assert _ops.purged_note(RunRow("r", "order", "completed", compacted_at=T0)) is None
