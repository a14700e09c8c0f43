"""What the client reports about runs without a server: ``RunInfo`` from a history and from a ``runs`` row, and the
walk along a continue-as-new chain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import RunStatus
from engine.runtime import (
    CallArgs,
    ChildWorkflowStarted,
    ErrorInfo,
    WorkflowContinuedAsNew,
    WorkflowStarted,
)
from schemas import RecordCodec, UnresolvedValue
from storage import RunRow, json_text
from streams import Client, RunInfo
from streams.client import info_of_row, run_info, walk_chain

T0 = 1_700_000_000_000


def _child(seq: int, position: int, child: str) -> ChildWorkflowStarted:
    return ChildWorkflowStarted(
        run_id="r",
        seq=seq,
        timestamp=T0 + seq,
        position=position,
        child_run_id=child,
        workflow_name="kid",
        args=CallArgs((), {}),
        wait_for_completion=True,
    )


def test_run_info_carries_the_arguments_links_children_and_key_of_the_history() -> None:
    started = WorkflowStarted(
        run_id="r",
        seq=1,
        timestamp=T0,
        workflow_name="loop",
        args=CallArgs((1, (2, 3)), {"mode": "fast"}),
        idempotency_key="k-1",
        parent_run_id="p",
        parent_position=4,
        continued_from="r0",
    )
    moved = WorkflowContinuedAsNew(run_id="r", seq=4, timestamp=T0 + 9, next_run_id="r2", args=CallArgs((), {}))
    info = run_info("r", [started, _child(2, 1, "kid-a"), _child(3, 3, "kid-b"), moved])
    assert info is not None
    assert (info.args, info.kwargs) == ((1, (2, 3)), {"mode": "fast"})
    assert (info.parent_run_id, info.parent_position, info.idempotency_key) == ("p", 4, "k-1")
    assert info.children == ("kid-a", "kid-b")
    assert (info.continued_from, info.continued_to, info.next_run_id) == ("r0", "r2", "r2")
    assert info.status is RunStatus.CONTINUED_AS_NEW and info.finished_at == T0 + 9


def test_a_runs_row_becomes_the_same_run_info_its_history_gives() -> None:
    records = RecordCodec()
    when = datetime(2024, 5, 1, tzinfo=UTC)
    row = RunRow(
        "r",
        "loop",
        "completed",
        args=json_text(CallArgs((1, (2, 3), when), {"mode": "fast"})),
        result=json_text({"total": 5, "at": when}),
        started_at=T0,
        finished_at=T0 + 9,
        parent_run_id="p",
        parent_position=4,
        continued_from="r0",
        idempotency_key="k-1",
        children=("kid-a", "kid-b"),
    )
    info = info_of_row(row, records)
    assert info == RunInfo(
        run_id="r",
        workflow_name="loop",
        status=RunStatus.COMPLETED,
        result={"total": 5, "at": when},  # typed values come back as their types
        started_at=T0,
        finished_at=T0 + 9,
        args=(1, (2, 3), when),
        kwargs={"mode": "fast"},
        parent_run_id="p",
        parent_position=4,
        children=("kid-a", "kid-b"),
        continued_from="r0",
        idempotency_key="k-1",
    )


def test_a_failed_row_has_its_error_type_and_message_and_unknown_classes_are_kept() -> None:
    failed = RunRow(
        "r", "wf", "failed", args='{"args":[],"kwargs":{}}', error_type="builtins.ValueError", error_message="no"
    )
    assert info_of_row(failed, RecordCodec()).error == ErrorInfo(
        type="builtins.ValueError", message="no", retryable=False
    )
    tagged = '{"$kflow":"enum","class":"elsewhere:Colour","name":"RED"}'
    done = info_of_row(RunRow("r", "wf", "completed", result=tagged), RecordCodec())
    assert done.result == UnresolvedValue("enum", "elsewhere:Colour", "RED")
    assert (done.args, done.kwargs, done.error) == ((), {}, None)
    cancelled = RunRow("r", "wf", "cancelled", error_message="customer asked")
    assert info_of_row(cancelled, RecordCodec()).error is None  # as from its history: a cancel is no error


def _chain(*links: tuple[str, str | None, str | None, str]) -> dict[str, RunInfo]:
    return {
        run_id: RunInfo(run_id, "loop", RunStatus(status), continued_from=back, next_run_id=forward)
        for run_id, back, forward, status in links
    }


async def test_the_chain_walks_back_and_forward_from_any_run_oldest_first() -> None:
    known = _chain(
        ("a", None, "b", "continued_as_new"),
        ("b", "a", "c", "continued_as_new"),
        ("c", "b", None, "running"),
    )
    asked: list[str] = []

    async def fetch(run_id: str) -> RunInfo | None:
        asked.append(run_id)
        return known.get(run_id)

    for start in ("a", "b", "c"):
        assert [info.run_id for info in await walk_chain(start, fetch)] == ["a", "b", "c"]
    assert await walk_chain("nope", fetch) == []
    asked.clear()
    await walk_chain("b", fetch)
    assert sorted(asked) == ["a", "b", "c"]  # each run read once


async def test_the_chain_stops_at_a_successor_not_started_yet_and_at_a_link_pointing_back() -> None:
    pending = _chain(("a", None, "b", "continued_as_new"))

    async def fetch_pending(run_id: str) -> RunInfo | None:
        return pending.get(run_id)

    assert [info.run_id for info in await walk_chain("a", fetch_pending)] == ["a"]
    looped = _chain(("a", "b", "b", "continued_as_new"), ("b", "a", "a", "continued_as_new"))

    async def fetch_looped(run_id: str) -> RunInfo | None:
        return looped.get(run_id)

    assert [info.run_id for info in await walk_chain("a", fetch_looped)] == ["b", "a"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"status": "sleeping"}, ValueError),
        ({"since": "yesterday"}, TypeError),
    ],
)
async def test_list_runs_refuses_bad_filters_before_reading_anything(call: dict[str, object], error: type) -> None:
    client = Client("127.0.0.1:1")  # nothing listens there: a read would fail differently
    with pytest.raises(error):
        await client.list_runs(**call)  # type: ignore[arg-type]
