"""What the ops commands (``kflow runs …``) show: run views read from Cassandra, their tables and JSON.

The CLI modules parse arguments, call these functions and print what they return; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol

from engine import KflowError, RunStatus
from engine.runtime import CallArgs, ChildWorkflowStarted, ErrorInfo, HistoryEvent, PayloadTypes
from streams._schema_topic import watch_schema_topic
from streams._settings import Settings
from streams._topics import Topics

if TYPE_CHECKING:
    from storage import RunPage, RunRow, RunStore

_CHAIN_LIMIT: Final = 100  # continue-as-new links followed in each direction (guards against a cycle)
_CHILDREN_LIMIT: Final = 50  # children whose status `runs show` looks up
_BRIEF_WIDTH: Final = 100  # characters of an event's fields shown in the events table


class OpsError(KflowError):
    """A problem the operator can act on (unknown run, missing workflow, bad --since); one line."""

    retryable = False


class RunQueries(Protocol):
    """The reads the ops commands need: ``storage.RunStore`` (a fake in unit tests). ``get_run``: the row
    or None; ``events``: the history ordered by seq; ``list_runs``: one page of runs, newest first."""

    def get_run(self, run_id: str) -> RunRow | None: ...

    def events(self, run_id: str) -> list[HistoryEvent]: ...

    def list_runs(
        self, status: str | None = None, workflow: str | None = None, limit: int = 50, page: str | None = None
    ) -> RunPage: ...


@contextmanager
def run_store(settings: Settings, types: PayloadTypes | None = None) -> Iterator[RunStore]:
    """A ``RunStore`` on ``KFLOW_CASSANDRA`` / ``KFLOW_KEYSPACE``, closed on exit.

    Args:
        types: the classes payloads are rebuilt as (a registry's, for a replay); None: values of classes this
            process does not know are kept as ``schemas.UnresolvedValue`` (to show them, never to run code on them).

    Raises:
        StorageError: Cassandra is unreachable or the keyspace is unusable.
    """
    from schemas import RecordCodec
    from storage import CassandraConnection, RunStore  # the driver loads only when needed

    records = RecordCodec(secret=settings.secret, types=types)
    watch_schema_topic(settings.kafka_target(), Topics(settings.topic_prefix))  # history written by a newer release
    with CassandraConnection(settings.cassandra_target()) as conn:
        yield RunStore(conn, settings.keyspace, records if types is not None else records.keeping_unknown())


# --- formatting -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a header line; the last column is not padded."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    lines = []
    for cells in (headers, *rows):
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        lines.append("  ".join([*padded, cells[-1]]).rstrip())
    return "\n".join(lines)


def format_time(ms: int | None) -> str:
    """Epoch ms as ``YYYY-MM-DD HH:MM:SS`` UTC; ``-`` for None."""
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(ms: int) -> str:
    """A duration for people: ``850ms``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"


def _took(row: RunRow, now_ms: int) -> str:
    if row.started_at is None:
        return "-"
    if row.finished_at is not None:
        return format_duration(max(0, row.finished_at - row.started_at))
    return f"{format_duration(max(0, now_ms - row.started_at))} so far"


def _loads(text: str | None) -> object:
    """A JSON text column as its value (None, or the raw text if it is not JSON, as they are)."""
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, default=repr)


def run_json(row: RunRow) -> dict[str, object]:
    """Every column of a run row, ``args``/``result`` decoded from their JSON text."""
    data: dict[str, object] = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    data["args"], data["result"] = _loads(row.args), _loads(row.result)
    return data


def runs_table(page: RunPage, now_ms: int) -> str:
    """``kflow runs list``: one line per run, newest first, then how to get the next page."""
    if not page.runs:
        return "no runs"
    rows = [[r.run_id, r.workflow_name, r.status, format_time(r.started_at), _took(r, now_ms)] for r in page.runs]
    text = table(["RUN ID", "WORKFLOW", "STATUS", "STARTED (UTC)", "DURATION"], rows)
    return text + (f"\nnext page: --page {page.next_page}" if page.next_page else "")


def runs_json(page: RunPage) -> str:
    """``kflow runs list --json``: ``{"runs": [...], "next_page": token or null}``."""
    return _dumps({"runs": [run_json(row) for row in page.runs], "next_page": page.next_page})


# --- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A child started by a run (from its ``ChildWorkflowStarted`` events); status None if not materialized."""

    position: int
    run_id: str
    workflow_name: str
    status: str | None


@dataclass(frozen=True, slots=True)
class RunView:
    """What ``kflow runs show`` reports: the run, its continue-as-new chain (oldest first) and children."""

    run: RunRow
    chain: tuple[RunRow, ...]
    children: tuple[ChildRun, ...]


def require_run(store: RunQueries, run_id: str, keyspace: str) -> RunRow:
    """The row of ``run_id``; raises OpsError ``no run X in keyspace K`` when there is none."""
    row = store.get_run(run_id)
    if row is None:
        raise OpsError(f"no run {run_id} in keyspace {keyspace}")
    return row


def describe_run(store: RunQueries, run_id: str, keyspace: str) -> RunView:
    """The run, its chain (``continued_from`` backwards, ``next_run_id`` forwards) and its children."""
    row = require_run(store, run_id, keyspace)
    seen = {row.run_id}  # shared by both directions: each run appears once even if the links loop
    before = _follow(store, row, lambda r: r.continued_from, seen)
    after = _follow(store, row, lambda r: r.next_run_id, seen)
    started = [e for e in store.events(run_id) if isinstance(e, ChildWorkflowStarted)]
    children = []
    for index, event in enumerate(started):
        child = store.get_run(event.child_run_id) if index < _CHILDREN_LIMIT else None
        children.append(
            ChildRun(
                event.position, event.child_run_id, event.workflow_name, child.status if child is not None else None
            )
        )
    return RunView(row, (*reversed(before), row, *after), tuple(children))


def _follow(store: RunQueries, row: RunRow, link: Callable[[RunRow], str | None], seen: set[str]) -> list[RunRow]:
    found: list[RunRow] = []
    current = row
    while (next_id := link(current)) and next_id not in seen and len(found) < _CHAIN_LIMIT:
        seen.add(next_id)
        if (following := store.get_run(next_id)) is None:
            break
        found.append(current := following)
    return found


def show_text(view: RunView, now_ms: int) -> str:
    """``kflow runs show``: one labelled line per fact, then children and the chain."""
    run = view.run
    lines = [
        ("run", run.run_id),
        ("workflow", run.workflow_name),
        ("status", run.status),
        ("started", f"{format_time(run.started_at)} UTC" if run.started_at is not None else "-"),
        ("finished", f"{format_time(run.finished_at)} UTC" if run.finished_at is not None else "-"),
        ("duration", _took(run, now_ms)),
        ("args", _call_text(_loads(run.args))),
    ]
    if run.status == RunStatus.COMPLETED:
        lines.append(("result", _compact(_loads(run.result))))
    if run.error_type or run.error_message:
        lines.append(("error", f"{run.error_type}: {run.error_message}"))
    if run.parent_run_id:
        lines.append(("parent", f"{run.parent_run_id} (position {run.parent_position})"))
    if run.idempotency_key:
        lines.append(("idempotency key", run.idempotency_key))
    if run.history_purged:
        lines.append(("events", f"{run.last_seq or 0} (history purged)"))
    else:
        lines.append(("events", f"{run.last_seq or 0} (kflow runs events {run.run_id})"))
    if run.compacted_at is not None:
        purged = " (history purged)" if run.history_purged else ""
        lines.append(("compacted", f"{format_time(run.compacted_at)} UTC{purged}"))
    text = "\n".join(f"{label:<16}{value}" for label, value in lines)
    if view.children:
        rows = [[str(c.position), c.run_id, c.workflow_name, c.status or "?"] for c in view.children]
        text += "\n\nchildren\n" + _indent(table(["POSITION", "RUN ID", "WORKFLOW", "STATUS"], rows))
    if len(view.chain) > 1:
        links = [f"{'* ' if r.run_id == run.run_id else ''}{r.run_id} ({r.status})" for r in view.chain]
        text += "\n\ncontinue-as-new chain (oldest first)\n" + _indent("\n".join(links))
    return text


def show_json(view: RunView) -> str:
    """``kflow runs show --json``: the row plus ``chain`` (run ids, oldest first) and ``children``."""
    data = run_json(view.run)
    data["chain"] = [{"run_id": r.run_id, "status": r.status} for r in view.chain]
    data["children"] = [dataclasses.asdict(child) for child in view.children]
    return _dumps(data)


def _call_text(value: object) -> str:
    """Call arguments (``{"args": [...], "kwargs": {...}}``) as ``("a", 1, key=2)``."""
    if not isinstance(value, dict) or set(value) != {"args", "kwargs"}:
        return _compact(value)
    parts = [_compact(v) for v in value["args"]] + [f"{k}={_compact(v)}" for k, v in value["kwargs"].items()]
    return f"({', '.join(parts)})"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


# --- history ----------------------------------------------------------------------------------


def event_fields(event: HistoryEvent) -> dict[str, object]:
    """An event's own fields (not run id, seq, timestamp) as JSON-ready values."""
    return {
        f.name: _plain(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name not in ("run_id", "seq", "timestamp")
    }


def _plain(value: object) -> object:
    """``value`` as JSON can show it: containers as lists and objects (keys that are not strings as their
    repr), anything else JSON lacks as its repr (via ``default=repr`` where it is dumped)."""
    if isinstance(value, CallArgs):
        return {"args": [_plain(v) for v in value.args], "kwargs": {k: _plain(v) for k, v in value.kwargs.items()}}
    if isinstance(value, ErrorInfo):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): _plain(v) for k, v in value.items()}
    return value


def plain(value: object) -> object:
    """A result or argument as JSON can show it (``json.dumps(plain(v), default=repr)`` never fails)."""
    return _plain(value)


def _compact(value: object) -> str:
    return json.dumps(value, default=repr, separators=(", ", ": "))


def _brief(event: HistoryEvent) -> str:
    parts = []
    for name, value in ((f.name, getattr(event, f.name)) for f in dataclasses.fields(event)):
        if name in ("run_id", "seq", "timestamp") or value is None:
            continue
        text = (
            f"{value.type}: {value.message}"
            if isinstance(value, ErrorInfo)
            else _call_text(_plain(value))
            if isinstance(value, CallArgs)
            else _compact(value)
        )
        parts.append(f"{name}={text}")
    text = " ".join(parts)
    return text if len(text) <= _BRIEF_WIDTH else text[: _BRIEF_WIDTH - 1] + "…"


def purged_note(row: RunRow) -> str | None:
    """What ``kflow runs events`` says instead of an empty history that ``kflow compact`` purged (else None)."""
    if not row.history_purged:
        return None
    return (
        f"the history of run {row.run_id} ({row.last_seq or 0} events) was purged by kflow compact at "
        f"{format_time(row.compacted_at)} UTC; its outcome remains in kflow runs show {row.run_id}"
    )


def events_table(events: Sequence[HistoryEvent]) -> str:
    """``kflow runs events``: seq, time since the run started, type and the event's key fields."""
    if not events:
        return "no events"
    start = events[0].timestamp
    rows = [
        [str(e.seq), f"+{format_duration(max(0, e.timestamp - start))}", type(e).__name__, _brief(e)] for e in events
    ]
    return table(["SEQ", "AT", "TYPE", "FIELDS"], rows)


def events_rows(events: Sequence[HistoryEvent]) -> list[dict[str, object]]:
    """The history as plain values: ``{seq, timestamp, offset_ms, type, fields}`` per event, in order (the CLI's
    ``--json`` and the web UI's ``/api/runs/{id}/events``)."""
    start = events[0].timestamp if events else 0
    return [
        {
            "seq": e.seq,
            "timestamp": e.timestamp,
            "offset_ms": e.timestamp - start,
            "type": type(e).__name__,
            "fields": event_fields(e),
        }
        for e in events
    ]


def events_json(events: Sequence[HistoryEvent]) -> str:
    """``kflow runs events --json``: ``events_rows`` as JSON text."""
    return _dumps(events_rows(events))
