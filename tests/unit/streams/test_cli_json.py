"""``--json`` on the commands that print data: only the JSON on stdout (progress and errors on stderr), through
the real entry point with a fake client (no servers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import streams.client
from engine import CancellationError, ScheduleSpec, StepFailedError
from engine.runtime import CallArgs, ScheduleState
from streams.cli import main, replay_json
from streams.client import spec_text
from streams.ops import ReplayOutcome

ROOT = Path(__file__).resolve().parents[3]
NOWHERE = {"KFLOW_BOOTSTRAP": "127.0.0.1:1", "KFLOW_CASSANDRA": "127.0.0.1:1"}  # nothing listens there


def in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


# --- --json: only the JSON on stdout -------------------------------------------------------------------------


def state(**changes: Any) -> ScheduleState:
    fields: dict[str, Any] = {
        "schedule_id": "nightly",
        "workflow_name": "report",
        "args": CallArgs((), {}),
        "spec": spec_text(ScheduleSpec(cron="0 9 * * *")),
        "overlap": "skip",
        "paused": False,
        "note": None,
        "created_at": 1_735_689_600_000,
        "updated_at": 1_735_689_600_000,
        "generation": 1,
        "next_fire_at": 1_735_891_200_000,
    }
    return ScheduleState(**(fields | changes))


class FakeSchedules:
    """``Client.schedules`` answering at once."""

    async def create(self, schedule_id: str, workflow: str, spec: ScheduleSpec, *args: object, **kw: Any) -> Any:
        return state(schedule_id=schedule_id, workflow_name=workflow, spec=spec_text(spec))

    async def update(self, schedule_id: str, **kw: Any) -> Any:
        return state(schedule_id=schedule_id, note=kw["note"])

    async def pause(self, schedule_id: str, note: str | None = None, **kw: Any) -> Any:
        return state(schedule_id=schedule_id, paused=True, note=note)

    async def resume(self, schedule_id: str, note: str | None = None, **kw: Any) -> Any:
        return state(schedule_id=schedule_id, note=note)

    async def delete(self, schedule_id: str, **kw: Any) -> None:
        return None

    async def trigger(self, schedule_id: str, **kw: Any) -> str:
        return f"{schedule_id}-run"

    async def backfill(self, schedule_id: str, start: int, end: int, **kw: Any) -> list[str]:
        return [f"{schedule_id}-{start}", f"{schedule_id}-{end - 1}"]


class FakeClient:
    """The ``Client`` methods the commands call; ``result`` returns ``FakeClient.outcome`` or raises it."""

    outcome: object = {"ok": True}

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.schedules = FakeSchedules()

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def close(self) -> None:
        return None

    async def resume_hook(self, token: str, payload: object, **kw: Any) -> str:
        return "queued"

    async def start(self, name: str, *args: object, **kw: Any) -> str:
        return f"{name}-1"

    async def result(self, run_id: str, timeout: float | None = None) -> object:
        if isinstance(FakeClient.outcome, BaseException):
            raise FakeClient.outcome
        return FakeClient.outcome

    async def get_events(self, run_id: str) -> list[object]:
        return []


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeClient]]:
    monkeypatch.setattr(streams.client, "Client", FakeClient)
    monkeypatch.chdir(ROOT)
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    yield FakeClient
    FakeClient.outcome = {"ok": True}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["hooks", "resume", "r1:approval", "{}"], {"token": "r1:approval", "outcome": "queued"}),
        (["schedules", "delete", "nightly"], {"schedule_id": "nightly", "deleted": True}),
        (["schedules", "trigger", "nightly"], {"schedule_id": "nightly", "run_id": "nightly-run"}),
        (
            ["schedules", "backfill", "nightly", "--start", "1970-01-01T00:00:01", "--end", "1970-01-01T00:00:02"],
            {"schedule_id": "nightly", "start": 1000, "end": 2000, "run_ids": ["nightly-1000", "nightly-1999"]},
        ),
    ],
)
def test_json_outcomes(
    argv: list[str], expected: object, fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = in_process([*argv, "--json"], capsys)
    assert (status, err) == (0, "")
    assert json.loads(out) == expected


@pytest.mark.parametrize(
    ("argv", "fields"),
    [
        (["create", "nightly", "--workflow", "report", "--interval", "1h"], {"workflow_name": "report"}),
        (["update", "nightly", "--note", "n"], {"note": "n"}),
        (["pause", "nightly", "--note", "why"], {"paused": True, "status": "paused", "note": "why"}),
        (["resume", "nightly"], {"paused": False, "status": "active"}),
    ],
)
def test_schedule_mutations_print_the_schedule_as_json(
    argv: list[str], fields: dict[str, object], fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = in_process(["schedules", *argv, "--json"], capsys)
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert data["schedule_id"] == "nightly" and fields.items() <= data.items()


def test_run_json_is_the_result(fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = in_process(["run", "examples.basic:order", "o-1", "9.5", "--json"], capsys)
    assert status == 0 and err == "run order-1 started\n"  # progress on stderr, the result alone on stdout
    assert json.loads(out) == {"run_id": "order-1", "status": "completed", "result": {"ok": True}}
    status, out, err = in_process(["run", "examples.basic:order", "o-1", "9.5"], capsys)
    assert (status, out, err) == (0, 'run order-1 started\n{"ok": true}\n', "")


def test_a_failed_run_exits_1_with_one_line(fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    fake_client.outcome = ValueError("bad amount\nsecond line")
    status, out, err = in_process(["run", "examples.basic:order", "o-1", "--json"], capsys)
    assert status == 1
    assert json.loads(out) == {
        "run_id": "order-1",
        "status": "failed",
        "error": {"type": "ValueError", "message": "bad amount\nsecond line"},
    }
    assert err == "run order-1 started\nkflow: error: run order-1 failed: ValueError: bad amount | second line\n"
    fake_client.outcome = CancellationError("stop")
    status, out, err = in_process(["run", "examples.basic:order", "o-1"], capsys)
    assert (status, out) == (1, "run order-1 started\n")
    assert err == "kflow: error: run order-1 cancelled: engine.CancellationError: stop\n"


def test_replay_json_has_every_outcome_and_the_summary() -> None:
    outcomes = [ReplayOutcome("r1", 5), ReplayOutcome("r2", 7, True, 1, "sleep", "step 'refund'")]
    data = replay_json(outcomes, "order")
    assert json.loads(json.dumps(data)) == data
    assert (data["runs"], data["deterministic"], data["not_deterministic"]) == (2, 1, 1)
    assert data["outcomes"] == [
        {
            "run_id": "r1",
            "workflow": "order",
            "deterministic": True,
            "events": 5,
            "diverged": False,
            "position": None,
            "recorded": "",
            "new": "",
            "problem": None,
        },
        {
            "run_id": "r2",
            "workflow": "order",
            "deterministic": False,
            "events": 7,
            "diverged": True,
            "position": 1,
            "recorded": "sleep",
            "new": "step 'refund'",
            "problem": None,
        },
    ]


def test_an_unfinished_run_and_a_stand_in_error(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_client.outcome = TimeoutError("run order-1 did not finish within the timeout")
    status, out, err = in_process(["run", "examples.basic:order", "--json", "--timeout", "5"], capsys)
    assert status == 1 and json.loads(out)["status"] == "running"
    assert err.splitlines()[-1] == "kflow: error: run order-1 did not finish within 5 s (it goes on running)"
    fake_client.outcome = StepFailedError("boom", error_type="app.errors.Boom")
    status, out, _ = in_process(["run", "examples.basic:order", "--json"], capsys)
    assert status == 1 and json.loads(out)["error"] == {"type": "app.errors.Boom", "message": "boom"}
