"""The ops views and replay checks (streams.ops._views) over a fake run store, and the ops CLI's argument errors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import pytest

from engine import Registry, sleep, step, workflow
from engine.runtime import ChildWorkflowStarted, HistoryEvent, WorkflowCompleted, WorkflowStarted
from engine.testing import FakeClock, InMemoryDriver
from storage import RunPage, RunRow
from streams import ops as _ops
from streams.cli import main, replay_progress_bar

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


class FakeStore:
    """RunStore's reads over dicts: list_runs pages newest first with an offset as the token."""

    def __init__(self, rows: Sequence[RunRow] = (), histories: dict[str, Sequence[HistoryEvent]] | None = None):
        self.rows = {row.run_id: row for row in rows}
        self.histories = histories or {}
        self.pages_read = 0

    def get_run(self, run_id: str) -> RunRow | None:
        return self.rows.get(run_id)

    def events(self, run_id: str) -> list[HistoryEvent]:
        return list(self.histories.get(run_id, ()))

    def list_runs(
        self, status: str | None = None, workflow: str | None = None, limit: int = 50, page: str | None = None
    ) -> RunPage:
        self.pages_read += 1
        matching = sorted(
            (r for r in self.rows.values() if status in (None, r.status) and workflow in (None, r.workflow_name)),
            key=lambda r: -r.started_at,
        )
        start = int(page or 0)
        more = start + limit < len(matching)
        return RunPage(matching[start : start + limit], str(start + limit) if more else None)


# --- workflows: v1 as recorded, v2 with a different step at position 1 -------------------------------


@step
async def reserve(item: str) -> str:
    return f"reserved {item}"


@step
async def charge(amount: float) -> float:
    return amount


@step
async def refund(amount: float) -> float:
    return -amount


@workflow(name="order")
async def order_v1(item: str, amount: float) -> dict[str, object]:
    reserved = await reserve(item)
    await sleep("1m")
    return {"reserved": reserved, "charged": await charge(amount)}


@workflow(name="order")
async def order_v2(item: str, amount: float) -> dict[str, object]:
    reserved = await reserve(item)
    return {"reserved": reserved, "charged": await refund(amount)}  # was: sleep, then charge


V1 = Registry([order_v1, reserve, charge, refund])
V2 = Registry([order_v2, reserve, charge, refund])


async def record(count: int) -> dict[str, tuple[HistoryEvent, ...]]:
    """Histories of ``count`` finished v1 runs (run ids r1, r2, …), one minute apart."""
    clock = FakeClock(T0)
    ids = iter(f"r{i}" for i in range(1, count + 1))
    driver = InMemoryDriver(V1, clock, run_ids=lambda: next(ids))
    histories = {}
    for i in range(count):
        run_id = driver.start("order", f"item{i}", 9.5)
        await driver.run_until_idle()
        clock.advance("1m")
        await driver.run_until_idle()
        histories[run_id] = driver.history(run_id)
    return histories


def row_of(history: Sequence[HistoryEvent]) -> RunRow:
    started, end = history[0], history[-1]
    assert isinstance(started, WorkflowStarted) and isinstance(end, WorkflowCompleted)
    return RunRow(
        started.run_id,
        started.workflow_name,
        "completed",
        json.dumps(list(started.args.args)),
        json.dumps(end.result),
        started_at=started.timestamp,
        finished_at=end.timestamp,
        last_seq=len(history),
    )


# --- formatting -------------------------------------------------------------------------------------


def test_table_aligns_columns_under_their_headers() -> None:
    assert _ops.table(["A", "LONG HEADER", "C"], [["xyz", "1", "last"], ["q", "22", ""]]).splitlines() == [
        "A    LONG HEADER  C",
        "xyz  1            last",
        "q    22",
    ]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0ms"), (850, "850ms"), (12_340, "12.3s"), (245_000, "4m05s"), (7_380_000, "2h03m"), (273_600_000, "3d04h")],
)
def test_durations_read_like_a_person_would_write_them(ms: int, text: str) -> None:
    assert _ops.format_duration(ms) == text


def test_runs_table_lists_newest_first_with_duration_and_next_page() -> None:
    rows = [
        RunRow("old", "order", "completed", started_at=T0, finished_at=T0 + 1500),
        RunRow("new", "order", "running", started_at=T0 + 60_000),
    ]
    page = FakeStore(rows).list_runs(limit=1)
    lines = _ops.runs_table(page, now_ms=T0 + 65_000).splitlines()
    assert lines[0].split() == ["RUN", "ID", "WORKFLOW", "STATUS", "STARTED", "(UTC)", "DURATION"]
    assert lines[1].split() == ["new", "order", "running", "2023-11-14", "22:14:20", "5.0s", "so", "far"]
    assert lines[2] == "next page: --page 1"
    last = _ops.runs_table(FakeStore(rows).list_runs(limit=1, page="1"), now_ms=T0).splitlines()
    assert last[1].split()[:3] == ["old", "order", "completed"] and last[1].endswith("1.5s") and len(last) == 2
    assert _ops.runs_table(RunPage([], None), now_ms=T0) == "no runs"


def test_runs_json_has_every_column_and_decoded_values() -> None:
    row = RunRow("r1", "order", "completed", args='["a", 1]', result='{"x": 2}', last_seq=7)
    data = json.loads(_ops.runs_json(RunPage([row], "tok")))
    assert data["next_page"] == "tok"
    assert data["runs"] == [{**dataclasses.asdict(row), "args": ["a", 1], "result": {"x": 2}, "children": []}]


def test_show_follows_the_continue_as_new_chain_both_ways_and_lists_children() -> None:
    chain = [
        RunRow("a", "loop", "continued_as_new", next_run_id="b"),
        RunRow("b", "loop", "continued_as_new", continued_from="a", next_run_id="c"),
        RunRow("c", "loop", "running", continued_from="b"),
        RunRow("kid", "child", "completed", parent_run_id="b", parent_position=3),
    ]
    started = WorkflowStarted(run_id="b", seq=1, timestamp=T0, workflow_name="loop", args=order_args())
    spawned = ChildWorkflowStarted(
        run_id="b",
        seq=2,
        timestamp=T0,
        position=3,
        child_run_id="kid",
        workflow_name="child",
        args=order_args(),
        wait_for_completion=True,
    )
    view = _ops.describe_run(FakeStore(chain, {"b": [started, spawned]}), "b", "ks")
    assert [r.run_id for r in view.chain] == ["a", "b", "c"]
    assert view.children == (_ops.ChildRun(3, "kid", "child", "completed"),)
    text = _ops.show_text(view, now_ms=T0)
    assert "* b (continued_as_new)" in text and "  a (continued_as_new)" in text and "c (running)" in text
    assert text.splitlines()[0].split() == ["run", "b"]
    data = json.loads(_ops.show_json(view))
    assert data["chain"] == [
        {"run_id": "a", "status": "continued_as_new"},
        {"run_id": "b", "status": "continued_as_new"},
        {"run_id": "c", "status": "running"},
    ]
    assert data["children"] == [{"position": 3, "run_id": "kid", "workflow_name": "child", "status": "completed"}]


def test_a_chain_that_loops_back_ends_instead_of_spinning() -> None:
    store = FakeStore(
        [
            RunRow("a", "w", "continued_as_new", next_run_id="b", continued_from="b"),
            RunRow("b", "w", "continued_as_new", next_run_id="a", continued_from="a"),
        ]
    )
    assert [r.run_id for r in _ops.describe_run(store, "a", "ks").chain] == ["b", "a"]


def order_args() -> object:
    from engine.runtime import CallArgs

    return CallArgs(("book",), {"qty": 2})


def test_show_of_a_failed_run_gives_its_error_and_no_result() -> None:
    row = RunRow(
        "f",
        "order",
        "failed",
        args="[1]",
        error_type="builtins.ValueError",
        error_message="boom",
        started_at=T0,
        finished_at=T0 + 2000,
        last_seq=4,
    )
    text = _ops.show_text(_ops.RunView(row, (row,), ()), now_ms=T0)
    assert "error           builtins.ValueError: boom" in text.splitlines()
    assert "result" not in text and "chain" not in text and "duration        2.0s" in text


def test_unknown_run_is_named_with_the_keyspace() -> None:
    with pytest.raises(_ops.OpsError, match=r"^no run nope in keyspace ks1$"):
        _ops.describe_run(FakeStore(), "nope", "ks1")


async def test_events_table_and_json_show_the_ordered_history() -> None:
    history = (await record(1))["r1"]
    lines = _ops.events_table(history).splitlines()
    assert lines[0].split() == ["SEQ", "AT", "TYPE", "FIELDS"]
    assert [line.split()[:3] for line in lines[1:3]] == [
        ["1", "+0ms", "WorkflowStarted"],
        ["2", "+0ms", "StepScheduled"],
    ]
    assert 'step_name="reserve"' in lines[2] and 'args=("item0", 9.5)' in lines[1]
    assert lines[-1].split()[:3] == [str(len(history)), "+1m00s", "WorkflowCompleted"]
    data = json.loads(_ops.events_json(history))
    assert [e["seq"] for e in data] == list(range(1, len(history) + 1))
    assert data[0]["fields"]["args"] == {"args": ["item0", 9.5], "kwargs": {}}
    assert data[-1]["offset_ms"] == 60_000 and data[-1]["fields"] == {
        "result": {"reserved": "reserved item0", "charged": 9.5}
    }


# --- replay -----------------------------------------------------------------------------------------


async def test_unchanged_code_replays_deterministically() -> None:
    history = (await record(1))["r1"]
    outcome = _ops.replay_history(V1, "r1", history)
    assert outcome.deterministic and outcome.describe() == f"deterministic ({len(history)} events)"


async def test_changed_code_reports_the_first_divergence() -> None:
    outcome = _ops.replay_history(V2, "r1", (await record(1))["r1"])
    assert not outcome.deterministic and outcome.position == 1
    assert outcome.describe() == "position 1: recorded sleep, new step 'refund'"


def test_a_malformed_history_cannot_be_replayed() -> None:
    outcome = _ops.replay_history(V1, "r1", [])
    assert not outcome.deterministic and outcome.describe().startswith("cannot replay: ")


def test_a_module_without_the_workflow_is_one_line() -> None:
    with pytest.raises(_ops.OpsError, match=r"^-A app does not define workflow 'invoice' \(it defines: order\)$"):
        _ops.require_workflow(V1, "app", "invoice")


async def test_replaying_every_run_of_a_workflow_reports_progress_and_a_summary() -> None:
    histories = await record(5)
    store = FakeStore([row_of(h) for h in histories.values()], histories)
    rows = _ops.runs_of_workflow(store, "order")
    assert [r.run_id for r in rows] == ["r5", "r4", "r3", "r2", "r1"]
    seen: list[tuple[int, bool]] = []
    outcomes = _ops.replay_runs(store, V2, rows[:2], lambda done, o: seen.append((done, o.deterministic)))
    assert seen == [(1, False), (2, False)]
    assert _ops.replay_summary(outcomes).splitlines() == [
        "0 of 2 runs deterministic",
        "  r5: position 1: recorded sleep, new step 'refund'",
        "  r4: position 1: recorded sleep, new step 'refund'",
    ]
    clean = _ops.replay_runs(store, V1, rows, lambda done, o: None)
    assert _ops.replay_summary(clean) == "5 of 5 runs deterministic"


async def test_runs_of_workflow_pages_and_stops_at_since_and_limit() -> None:
    histories = await record(5)  # r1 started at T0, r5 at T0 + 8 min
    rows = [row_of(h) for h in histories.values()]
    assert [r.run_id for r in _ops.runs_of_workflow(FakeStore(rows), "order", limit=2)] == ["r5", "r4"]
    since = rows[2].started_at  # r3
    assert [r.run_id for r in _ops.runs_of_workflow(FakeStore(rows), "order", since_ms=since)] == ["r5", "r4", "r3"]
    assert _ops.runs_of_workflow(FakeStore(rows), "invoice") == []


def test_progress_bar() -> None:
    assert replay_progress_bar(3, 12, 1, width=12) == "replay [###.........] 3/12 runs, 1 diverged"
    assert replay_progress_bar(0, 0, 0, width=4) == "replay [####] 0/0 runs, 0 diverged"


def test_since_takes_a_duration_or_an_iso_time() -> None:
    assert _ops.parse_since("7d", now_ms=T0) == T0 - 7 * 86_400_000
    assert _ops.parse_since("2023-11-14T22:13:20", now_ms=0) == T0
    assert _ops.parse_since("2023-11-14T23:13:20+01:00", now_ms=0) == T0
    with pytest.raises(_ops.OpsError, match=r"^--since 'last week': expected a duration"):
        _ops.parse_since("last week", now_ms=T0)


# --- argument errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["runs", "show"],
        ["runs", "list", "--limit", "0"],
        ["runs", "list", "--limit", "x"],
        ["runs", "cancel"],
        ["replay"],
        ["replay", "r1"],
        ["replay", "r1", "--workflow", "order", "-A", "m"],
        ["replay", "r1", "-A", "m", "--since", "7d"],
        ["replay", "--workflow", "order"],
    ],
)
def test_bad_ops_arguments_get_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and "error:" in err and "--help" in err


@pytest.mark.parametrize(
    "argv", [["runs", "list"], ["runs", "show"], ["runs", "events"], ["runs", "cancel"], ["runs", "lag"], ["replay"]]
)
def test_every_ops_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0 and "usage: kflow " + " ".join(argv) in capsys.readouterr().out


def test_a_row_with_only_its_run_id_still_renders() -> None:
    row = RunRow("partial", "order", "running")  # no times, no args, no seq
    assert _ops.runs_table(RunPage([row], None), now_ms=T0).splitlines()[1].split() == [
        "partial",
        "order",
        "running",
        "-",
        "-",
    ]
    text = _ops.show_text(_ops.RunView(row, (row,), ()), now_ms=T0)
    assert "started         - UTC" not in text and "events          0 (kflow runs events partial)" in text


def test_a_history_that_cannot_be_decoded_is_reported_not_raised() -> None:
    from schemas import SchemaError

    class Undecodable(FakeStore):
        def events(self, run_id: str) -> list[HistoryEvent]:
            raise SchemaError("a cloudpickle payload and no secret")

    outcome = _ops.replay_stored(Undecodable(), V1, "r1")
    assert outcome.describe() == "cannot replay: its history cannot be decoded: a cloudpickle payload and no secret"
