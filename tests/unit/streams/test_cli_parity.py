"""The pyworkflow-engine parity commands without servers: ``kflow run`` keyword arguments (``--arg``,
``--args-json``), ``kflow workflows list|info``, and the usage errors of ``runs cancel`` / ``hooks info``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import streams.client
from streams.cli import UsageError, main, parse_call

ROOT = Path(__file__).resolve().parents[3]
NOWHERE = {"KFLOW_BOOTSTRAP": "127.0.0.1:1", "KFLOW_CASSANDRA": "127.0.0.1:1"}  # nothing listens there


def in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


# --- kflow run: the call's arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("positional", "pairs", "args_json", "expected"),
    [
        (["o-1", "9.5"], [], None, (("o-1", 9.5), {})),
        (
            [],
            ["order_id=o-1", "amount=9.5", "tags=[1, 2]", "note="],
            None,
            ((), {"order_id": "o-1", "amount": 9.5, "tags": [1, 2], "note": ""}),
        ),
        (["o-1"], ["amount=9.5", "expr=a=b"], None, (("o-1",), {"amount": 9.5, "expr": "a=b"})),
        ([], [], '{"args": ["o-1"], "kwargs": {"amount": 9.5}}', (("o-1",), {"amount": 9.5})),
        ([], [], '{"kwargs": {"amount": 9.5}}', ((), {"amount": 9.5})),
        ([], [], '["o-1", 9.5]', (("o-1", 9.5), {})),
        ([], [], '{"order_id": "o-1", "amount": 9.5}', ((), {"order_id": "o-1", "amount": 9.5})),  # pyworkflow's
        ([], ["amount=1"], '{"args": ["o-1"]}', (("o-1",), {"amount": 1})),
        ([], [], "{}", ((), {})),
        (["true", "null", "{}", "x y"], [], None, ((True, None, {}, "x y"), {})),
    ],
)
def test_arguments_are_json_when_they_parse_else_strings(
    positional: list[str], pairs: list[str], args_json: str | None, expected: tuple[object, object]
) -> None:
    assert parse_call(positional, pairs, args_json) == expected


@pytest.mark.parametrize(
    ("positional", "pairs", "args_json", "message"),
    [
        ([], ["amount"], None, "expected KEY=VALUE"),
        ([], ["=9"], None, "expected KEY=VALUE"),
        ([], ["a=1", "a=2"], None, "'a' is given twice"),
        ([], ["amount=2"], '{"kwargs": {"amount": 1}}', "'amount' is given twice"),
        (["o-1"], [], '["o-2"]', "either as ARGs or in --args-json"),
        ([], [], "{not json", "--args-json is not JSON"),
        ([], [], "7", "must be a JSON array, an object"),
        ([], [], '{"args": {"a": 1}}', '"args" must be an array'),
    ],
)
def test_bad_arguments_are_usage_errors(
    positional: list[str], pairs: list[str], args_json: str | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        parse_call(positional, pairs, args_json)


class StartRecorder:
    """``Client`` for ``kflow run``: records the start, the run completes at once."""

    started: ClassVar[list[tuple[str, tuple[object, ...], dict[str, Any]]]] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    async def __aenter__(self) -> StartRecorder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def start(self, name: str, *args: object, **kwargs: Any) -> str:
        StartRecorder.started.append((name, args, kwargs))
        return f"{name}-1"

    async def result(self, run_id: str, timeout: float | None = None) -> object:
        return "done"


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[StartRecorder]]:
    monkeypatch.setattr(streams.client, "Client", StartRecorder)
    monkeypatch.chdir(ROOT)
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    StartRecorder.started = []
    yield StartRecorder


def test_run_passes_keyword_arguments_to_the_start(
    recorder: type[StartRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "examples.basic:order", "--arg", "order_id=o-1", "--arg", "amount=9.5", "--idempotency-key", "k"]
    status, out, _ = in_process(argv, capsys)
    assert (status, out.splitlines()[-1]) == (0, '"done"')
    assert recorder.started == [("order", (), {"order_id": "o-1", "amount": 9.5, "idempotency_key": "k"})]
    status, _, _ = in_process(
        ["run", "examples.basic:order", "--args-json", '{"args": ["o-2"], "kwargs": {"amount": 1}}'], capsys
    )
    assert status == 0 and recorder.started[-1] == ("order", ("o-2",), {"amount": 1, "idempotency_key": None})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arg", "amount"], "kflow: error: --arg 'amount': expected KEY=VALUE (e.g. --arg amount=9.5)\n"),
        (
            ["--arg", "idempotency_key=x"],
            "kflow: error: a keyword argument cannot be named idempotency_key: use --idempotency-key\n",
        ),
        (["--args-json", "[1"], "kflow: error: --args-json is not JSON: "),
    ],
)
def test_run_refuses_bad_arguments_with_one_line_and_exit_2_before_starting(
    argv: list[str], message: str, recorder: type[StartRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = in_process(["run", "examples.basic:order", *argv], capsys)
    assert (status, out, recorder.started) == (2, "", [])
    assert err.startswith(message) and err.count("\n") == 1


# --- kflow workflows list|info -------------------------------------------------------------------------------


@pytest.fixture
def here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)


def test_workflows_list_shows_each_workflow_and_step_with_its_options(
    here: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = in_process(["workflows", "list", "-A", "examples.basic"], capsys)
    assert (status, err) == (0, "")
    workflows, steps = out.split("\n\n")
    assert workflows.splitlines()[1].split() == ["order", "examples.basic:order", "1h", "-", "-"]
    rows = {line.split()[0]: line.split()[1:] for line in steps.splitlines()[1:]}
    assert rows["reserve"] == ["examples.basic:reserve", "3", "fixed", "1s", "1m"]
    assert rows["charge"][-1] == "10s"  # @step(timeout="10s")
    status, out, _ = in_process(["workflows", "list", "-A", "examples.schedules"], capsys)
    assert "morning_report" in out.splitlines()[2].split()[-1:]  # its declared schedule


def test_workflows_list_json_has_every_option(here: None, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = in_process(["workflows", "list", "-A", "examples.schedules", "--json"], capsys)
    data = json.loads(out)
    assert status == 0 and [w["name"] for w in data["workflows"]] == ["report", "morning_report"]
    morning = data["workflows"][1]
    assert morning["max_duration_ms"] is None and morning["durable"] is True
    assert morning["parameters"] == [
        {"name": "region", "kind": "positional_or_keyword", "annotation": "str", "default": None, "required": True}
    ]
    (schedule,) = morning["schedules"]
    assert schedule["schedule_id"] == "morning_report" and schedule["overlap"] == "skip"
    assert schedule["spec"]["cron"] == "0 6 * * 1-5" and schedule["args"] == {"args": ["eu"], "kwargs": {}}
    (step,) = data["steps"]
    assert step["name"] == "measure" and step["timeout_ms"] == 60_000 and step["policy"]["max_retries"] == 3


def test_workflows_info_of_a_workflow_a_step_and_an_unknown_name(
    here: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = in_process(["workflows", "info", "morning_report", "-A", "examples.schedules"], capsys)
    lines = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith(" "))
    assert status == 0 and lines["workflow"] == "morning_report"
    assert lines["schedule"] == "morning_report: cron 0 6 * * 1-5 (Europe/Paris), overlap skip"
    status, out, _ = in_process(["workflows", "info", "reserve", "-A", "examples.basic", "--json"], capsys)
    data = json.loads(out)
    assert status == 0 and (data["kind"], data["policy"]["strategy"], data["policy"]["delays_ms"]) == (
        "step",
        "fixed",
        [1000],
    )
    status, out, err = in_process(["workflows", "info", "nope", "-A", "examples.basic"], capsys)
    assert (status, out) == (2, "")
    assert (
        err == "kflow: error: no workflow named 'nope' is registered (known: order) (nor a step of -A examples.basic)\n"
    )


# --- usage errors of the new options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "cancel", "r1", "--wait", "--timeout", "0"], "expected a positive number of seconds, got '0'"),
        (["hooks", "list", "--status", "asleep"], "invalid choice: 'asleep'"),
        (["hooks", "info", "no-colon"], "hook token 'no-colon' is not of the form '<run_id>:<name>'"),
        (["runs", "list", "--limit", "0"], "expected a positive integer, got '0'"),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    argv: list[str], message: str, here: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = in_process(argv, capsys)
    assert (status, out) == (2, "") and message in err and err.count("\n") == 1
