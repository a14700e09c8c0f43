"""What HistoryWriter plans for a batch of events, and its run-key cache — no server."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace

from cassandra.query import UNSET_VALUE

from engine.runtime import (
    CallArgs,
    ChildWorkflowStarted,
    ErrorInfo,
    HistoryEvent,
    StepCompleted,
    StepScheduled,
    WorkflowFailed,
    WorkflowStarted,
)
from storage import HistoryWriter, Write, group_writes

T0 = 1_700_000_000_000
RUN = "r" * 32


class _Done:
    """A ResponseFuture that has already succeeded."""

    def __init__(self, rows: list[object]) -> None:
        self.rows = rows

    def add_callbacks(self, callback: Callable[[object], None], errback: Callable[[BaseException], None]) -> None:
        callback(self.rows)


@dataclass
class _Session:
    sent: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    runs: dict[str, object] = field(default_factory=dict)

    def prepare(self, query: str) -> str:
        return query

    def execute_async(self, query: str, params: tuple[object, ...]) -> _Done:
        self.sent.append((query, params))
        if query.startswith("SELECT"):
            row = self.runs.get(str(params[0]))
            return _Done([row] if row is not None else [])
        return _Done([])


def _writer(session: _Session, **options: int) -> HistoryWriter:
    return HistoryWriter(SimpleNamespace(session=session), "ks", **options)  # type: ignore[arg-type]


def _history() -> list[HistoryEvent]:
    args = CallArgs((1,), {})
    return [
        WorkflowStarted(run_id=RUN, seq=1, timestamp=T0, workflow_name="orders", args=args),
        StepScheduled(
            run_id=RUN, seq=2, timestamp=T0 + 1, position=0, step_name="charge", args=args, attempt=0, max_retries=3
        ),
        StepCompleted(run_id=RUN, seq=3, timestamp=T0 + 2, position=0, attempt=0, result=7),
        WorkflowFailed(
            run_id=RUN,
            seq=4,
            timestamp=T0 + 3,
            error=ErrorInfo(type="builtins.ValueError", message="no", retryable=False),
        ),
    ]


def _table(query: str) -> str:
    match = re.search(r"\bks\.\w+", query)
    assert match is not None, query
    return match.group(0)


def _write_timestamp(write: Write) -> object:
    """The bound ``USING TIMESTAMP ?`` value of a write."""
    query = str(write.statement)
    if query.startswith("INSERT"):
        return write.params[-1]
    assert re.match(r"^(UPDATE|DELETE FROM) \S+ USING TIMESTAMP \?", query), query
    return write.params[0]


KEYS = {RUN: ("orders", T0)}


def test_every_write_carries_the_seq_of_its_event_as_timestamp() -> None:
    writes = _writer(_Session()).plan(_history(), [b"e1", b"e2", b"e3", b"e4"], KEYS)
    assert all("USING TIMESTAMP ?" in str(w.statement) for w in writes)
    events = [(w.params[1], w.params[-1], w.params[4]) for w in writes if "ks.events" in str(w.statement)]
    assert events == [(1, 1, b"e1"), (2, 2, b"e2"), (3, 3, b"e3"), (4, 4, b"e4")]  # (seq, timestamp, data)
    by_table = {
        (str(w.statement).split()[0], _table(str(w.statement))): _write_timestamp(w)
        for w in writes
        if "ks.events" not in str(w.statement) and "last_seq" not in str(w.statement)
    }
    assert by_table == {
        ("INSERT", "ks.runs"): 1,
        ("INSERT", "ks.runs_by_status"): 4,
        ("INSERT", "ks.runs_by_workflow"): 1,
        ("INSERT", "ks.runs_by_id_prefix"): 1,
        ("UPDATE", "ks.runs"): 4,
        ("DELETE", "ks.runs_by_status"): 4,
        ("UPDATE", "ks.runs_by_workflow"): 4,
    }
    progress = [w.params for w in writes if "last_seq" in str(w.statement)]
    assert progress == [(4, 4, T0 + 3, RUN)]  # one last_seq write per run and batch, the newest event's


def test_the_status_move_deletes_the_running_row_and_inserts_the_final_one() -> None:
    writes = _writer(_Session()).plan(_history(), [b""] * 4, KEYS)
    key = ("2023-11-14", T0, RUN)
    deletes = [(w.params, w.partition) for w in writes if str(w.statement).startswith("DELETE")]
    assert deletes == [((4, "running", *key), ("runs_by_status", "running", "2023-11-14"))]
    inserted = [w.params for w in writes if str(w.statement).startswith("INSERT INTO ks.runs_by_status")]
    assert inserted == [("running", *key, "orders", 1), ("failed", *key, "orders", 4)]


def test_a_started_run_is_listed_under_the_first_four_characters_of_its_id() -> None:
    writes = _writer(_Session()).plan(_history()[:1], [b""], KEYS)
    prefixed = [(w.params, w.partition) for w in writes if "runs_by_id_prefix" in str(w.statement)]
    assert prefixed == [(("rrrr", RUN, 1), ("runs_by_id_prefix", "rrrr"))]


def test_without_the_started_keys_only_the_runs_row_records_the_end() -> None:
    writes = _writer(_Session()).plan(_history()[-1:], [b""], {})
    assert [_table(str(w.statement)) for w in writes] == ["ks.events", "ks.runs", "ks.runs"]


def test_a_started_child_is_one_map_cell_of_the_parents_runs_row_stamped_with_its_seq() -> None:
    args = CallArgs((), {})
    children = [
        ChildWorkflowStarted(
            run_id=RUN,
            seq=seq,
            timestamp=T0 + seq,
            position=position,
            child_run_id=f"kid-{position}",
            workflow_name="child",
            args=args,
            wait_for_completion=True,
        )
        for seq, position in ((5, 2), (6, 4))
    ]
    writes = _writer(_Session()).plan(children, [b"c1", b"c2"], KEYS)
    cells = [(str(w.statement), w.params, w.partition) for w in writes if "children" in str(w.statement)]
    assert cells == [
        ("UPDATE ks.runs USING TIMESTAMP ? SET children[?] = ? WHERE run_id = ?", (5, 2, "kid-2", RUN), ("runs", RUN)),
        ("UPDATE ks.runs USING TIMESTAMP ? SET children[?] = ? WHERE run_id = ?", (6, 4, "kid-4", RUN), ("runs", RUN)),
    ]


def test_absent_optional_fields_are_unset_not_null() -> None:
    writes = _writer(_Session()).plan(_history()[:1], [b""], {})
    (params,) = [w.params for w in writes if str(w.statement).startswith("INSERT INTO ks.runs ")]
    assert params[:5] == (RUN, "orders", "running", '{"args":[1],"kwargs":{}}', T0)
    assert params[5:9] == (UNSET_VALUE,) * 4  # parent_run_id, parent_position, continued_from, idempotency_key


def test_writes_group_into_single_partition_batches_bounded_in_bytes() -> None:
    writes = _writer(_Session()).plan(_history(), [b"x" * 40] * 4, KEYS)
    groups = group_writes(writes, max_bytes=100)
    assert all(len({w.partition for w in group}) == 1 for group in groups)
    assert sorted(len(g) for g in groups if g[0].partition == ("events", RUN)) == [2, 2]  # 4 x 40 bytes
    runs = [g for g in groups if g[0].partition == ("runs", RUN)]
    assert len(runs) == 1 and len(runs[0]) == 3  # started, finished, last_seq: one mutation
    assert sum(len(g) for g in groups) == len(writes)
    events = [w for w in writes if w.partition == ("events", RUN)]
    assert [w for g in group_writes(writes) for w in g if w.partition == ("events", RUN)] == events  # in order


async def test_terminal_keys_come_from_the_cache_else_from_the_runs_row() -> None:
    session = _Session()
    writer = _writer(session)
    writer._remember("cached", "orders", T0)
    session.runs[RUN] = SimpleNamespace(workflow_name="orders", started_at=datetime(2023, 11, 14, 22, 13, 20))
    found = await writer._recall(["cached", RUN, "unknown"])
    assert found == {"cached": ("orders", T0), RUN: ("orders", T0)}
    assert [p for q, p in session.sent if q.startswith("SELECT")] == [(RUN,), ("unknown",)]


def test_the_cache_is_bounded() -> None:
    writer = _writer(_Session(), cache_size=2)
    for run_id in ("a", "b", "a", "c"):
        writer._remember(run_id, "w", T0)
    assert list(writer._started) == ["a", "c"]  # least recently written first out
    unbounded = _writer(_Session(), cache_size=0)
    unbounded._remember("a", "w", T0)
    assert not unbounded._started
