"""``kflow schedules``: argument checking (one line, no traceback) and what it prints (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from engine import CalendarSpec, ScheduleSpec
from engine.runtime import CallArgs, ScheduleState
from streams.cli import (
    build_parser,
    describe_spec,
    fire_time,
    main,
    parse_instant,
    schedule_json,
    schedule_text,
    schedules_table,
    updated_spec,
)
from streams.client import spec_text

UNREACHABLE = {"KFLOW_BOOTSTRAP": "127.0.0.1:1"}  # nothing listens there: only local checks can answer


def kflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "schedules", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **UNREACHABLE},
        timeout=60,
    )


def run_in_process(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``kflow schedules ARGV`` through the real entry point, in this process (a traceback would raise here)."""
    for name, value in UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    try:
        status = main(["schedules", *argv])
    except SystemExit as exc:  # argparse: usage errors and --help
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["create", "s", "--workflow", "w", "--cron", "61 * * * *"], "minute field '61': value 61 is out of range"),
        (
            ["create", "s", "--workflow", "w", "--cron", "0 9 * * *", "--timezone", "Mars/Olympus"],
            "timezone 'Mars/Olympus' is not a known IANA time zone",
        ),
        (["create", "s", "--workflow", "w", "--interval", "1.5s"], "must be a whole number of seconds"),
        (["create", "s", "--workflow", "w", "--interval", "soon"], "interval"),
        (["create", "s", "--workflow", "w", "--interval", "1s", "--args", "{x"], "argument --args: not JSON"),
        (["create", "s", "--workflow", "w", "--interval", "1s", "--args", "{}"], "expected a JSON list"),
        (["create", "s", "--workflow", "w", "--interval", "1s", "--kwargs", "[1]"], "expected a JSON object"),
        (
            ["create", "s", "--workflow", "w", "--interval", "1s", "--kwargs", '{"timeout": 1}'],
            "'timeout' cannot be given",
        ),
        (["create", "s", "--workflow", "w", "--calendar", '{"hour": 25}'], "CalendarSpec hour=25"),
        (["create", "s", "--workflow", "w", "--calendar", '{"hours": 2}'], "unknown keys 'hours'"),
        (["create", "s", "--workflow", "w", "--interval", "1s", "--overlap", "sometimes"], "unknown overlap policy"),
        (["create", "s", "--workflow", "w"], "one of the arguments --cron --interval --calendar is required"),
        (["create", "s", "--workflow", "w", "--interval", "1s", "--cron", "* * * * *"], "not allowed with"),
        (
            ["create", "s", "--workflow", "w", "--interval", "1s", "--start-at", "2030", "--end-at", "2029-01-01"],
            "argument --start-at: not an ISO 8601 time",
        ),
        (
            [
                "create",
                "s",
                "--workflow",
                "w",
                "--interval",
                "1s",
                "--start-at",
                "2030-01-01",
                "--end-at",
                "2029-01-01",
            ],
            "is before start_at",
        ),
        (["update", "s"], "nothing to update"),
        (["backfill", "s", "--start", "yesterday", "--end", "2025-01-01"], "argument --start: not an ISO 8601 time"),
        (["backfill", "s", "--start", "2025-01-02", "--end", "2025-01-01"], "backfill needs start < end"),
        (["pause"], "the following arguments are required: ID"),
    ],
)
def test_bad_arguments_are_one_line_without_a_traceback(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_in_process(argv, capsys, monkeypatch)
    assert status != 0 and out == "" and err.count("\n") == 1 and err.startswith("kflow"), err
    assert says in err


@pytest.mark.parametrize(
    "command", ["list", "show", "create", "update", "pause", "resume", "delete", "trigger", "backfill", "activate"]
)
def test_every_schedules_command_has_help(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, _ = run_in_process([command, "--help"], capsys, monkeypatch)
    assert status == 0 and out.startswith(f"usage: kflow schedules {command}")


def test_an_unreachable_broker_is_reported_without_a_traceback() -> None:
    done = kflow("list")
    assert done.returncode == 4 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("kflow: error: Kafka at 127.0.0.1:1 is unreachable (checking topic kflow.schemas): ")


def test_instants_are_iso_8601_and_naive_ones_utc() -> None:
    assert parse_instant("1970-01-01T00:00:01") == 1000
    assert parse_instant("1970-01-01T01:00:01+01:00") == 1000
    assert parse_instant("1970-01-01T00:00:01Z") == 1000


def test_update_keeps_the_spec_fields_not_given() -> None:
    parser = build_parser()
    current = ScheduleSpec(cron="0 9 * * *", timezone="Europe/Paris", jitter="30s", end_at=5_000_000_000_000)
    args = parser.parse_args(["schedules", "update", "s", "--interval", "10m"])
    assert updated_spec(current, args) == ScheduleSpec(
        interval="10m", timezone="Europe/Paris", jitter="30s", end_at=5_000_000_000_000
    )
    args = parser.parse_args(["schedules", "update", "s", "--timezone", "Asia/Tokyo"])
    assert updated_spec(current, args) == ScheduleSpec(
        cron="0 9 * * *", timezone="Asia/Tokyo", jitter="30s", end_at=5_000_000_000_000
    )
    args = parser.parse_args(["schedules", "update", "s", "--calendar", '[{"hour": 9}, {"hour": 17}]'])
    assert updated_spec(current, args).calendar == (CalendarSpec(hour=9), CalendarSpec(hour=17))
    args = parser.parse_args(["schedules", "update", "s", "--catchup-window", "1h"])
    assert updated_spec(current, args).catchup_window == timedelta(hours=1)
    assert updated_spec(
        updated_spec(current, args), parser.parse_args(["schedules", "update", "s", "--jitter", "1s"])
    ).catchup_window == timedelta(hours=1)  # kept when not given


def schedule(**changes: object) -> ScheduleState:
    base = ScheduleState(
        schedule_id="nightly",
        workflow_name="report",
        args=CallArgs(("eu",), {"full": True}),
        spec=spec_text(ScheduleSpec(cron="0 9 * * 1-5", timezone="Europe/Paris")),
        overlap="skip",
        paused=False,
        note="weekdays",
        created_at=1_735_689_600_000,
        updated_at=1_735_689_600_000,
        generation=1,
        next_fire_at=1_735_891_200_000,
        fires=3,
        skipped=1,
        recent_runs=("r1", "r2"),
        running=("r2",),
    )
    return ScheduleState(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **changes})  # type: ignore[arg-type]


def test_specs_are_described_in_one_line() -> None:
    assert describe_spec(ScheduleSpec(cron="0 9 * * 1-5", timezone="Europe/Paris")) == "cron 0 9 * * 1-5 (Europe/Paris)"
    assert (
        describe_spec(ScheduleSpec(interval=timedelta(hours=1, minutes=30), jitter="30s")) == "every 1h30m, jitter 30s"
    )
    assert (
        describe_spec(ScheduleSpec(calendar=(CalendarSpec(hour=9),), start_at=0))
        == "calendar (1 entry), from 1970-01-01 00:00:00 UTC"
    )
    assert describe_spec(ScheduleSpec(interval="1m", catchup_window="1h")) == "every 1m, catch-up 1h"
    assert describe_spec(ScheduleSpec(interval="1m", catchup_window=0)) == "every 1m, catch-up off"


def test_fire_times_are_shown_in_utc_and_in_the_schedules_time_zone() -> None:
    assert fire_time(1_735_891_200_000, "UTC") == "2025-01-03 08:00:00 UTC"
    assert (
        fire_time(1_735_891_200_000, "Europe/Paris")
        == "2025-01-03 08:00:00 UTC = 2025-01-03 09:00:00 Europe/Paris (+01:00)"
    )
    assert fire_time(None, "UTC") == "-"


def test_show_and_list_and_json() -> None:
    text = schedule_text(schedule())
    assert "next fire    2025-01-03 08:00:00 UTC = 2025-01-03 09:00:00 Europe/Paris (+01:00)" in text
    assert "fires        3 started, 1 skipped" in text and "running      r2" in text
    assert text.endswith("recent runs  2, newest first\n  r2\n  r1")
    assert 'report {"args": ["eu"], "kwargs": {"full": true}}' in text
    assert "status       paused" in schedule_text(schedule(paused=True, next_fire_at=None))
    table = schedules_table([schedule(), schedule(schedule_id="old", next_fire_at=None)]).splitlines()
    assert table[0].split() == [
        "ID",
        "WORKFLOW",
        "WHEN",
        "STATUS",
        "NEXT",
        "FIRE",
        "OVERLAP",
        "RUNNING",
        "FIRES",
        "SKIPPED",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert "spent" in table[2] and "active" in table[1]
    data = json.loads(json.dumps(schedule_json(schedule())))
    assert data["spec"]["cron"] == "0 9 * * 1-5" and data["args"] == {"args": ["eu"], "kwargs": {"full": True}}
    assert data["status"] == "active" and data["recent_runs"] == ["r1", "r2"]


def test_outcome_counts_are_shown_and_a_state_from_before_counting_shows_dashes() -> None:
    counted = schedule(completed=5, failed=2, cancelled=1)
    assert "outcomes     5 completed, 2 failed, 1 cancelled" in schedule_text(counted)
    assert schedules_table([counted]).splitlines()[1].split()[-3:] == ["5", "2", "1"]
    data = schedule_json(counted)
    assert (data["completed"], data["failed"], data["cancelled"]) == (5, 2, 1)
    legacy = schedule()  # no counters: written by a release that did not count outcomes
    assert "outcomes     - completed, - failed, - cancelled" in schedule_text(legacy)
    assert schedules_table([legacy]).splitlines()[1].split()[-3:] == ["-", "-", "-"]
    assert schedule_json(legacy)["completed"] is None
