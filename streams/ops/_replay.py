"""Replay checks for the ops CLI (``kflow replay ID`` / ``--workflow NAME``): recorded histories run through the
loaded workflow code, reporting the first divergence. Nothing here prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from engine import InvalidDurationError, KflowError, NonDeterminismError, Registry, UnknownWorkflowError
from engine.runtime import HistoryEvent, Run, parse_duration
from schemas import RecordCodec, SchemaError
from streams.ops._views import OpsError, RunQueries

if TYPE_CHECKING:
    from storage import RunRow

_PAGE_SIZE: Final = 200  # runs per list_runs page when replaying every run of a workflow


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """Replaying one recorded history through the loaded code: ``diverged`` (it issues something else
    than the history recorded at ``position``; None: at the run's end), or a ``problem`` (malformed, …)."""

    run_id: str
    events: int
    diverged: bool = False
    position: int | None = None
    recorded: str = ""
    new: str = ""
    problem: str | None = None

    @property
    def deterministic(self) -> bool:
        """True when the code reproduced the recorded history exactly."""
        return not self.diverged and self.problem is None

    def describe(self) -> str:
        """``deterministic (N events)``, ``position P: recorded …, new …`` or ``cannot replay: …``."""
        if self.problem is not None:
            return f"cannot replay: {self.problem}"
        if not self.diverged:
            return f"deterministic ({self.events} events)"
        where = "end of the run" if self.position is None else f"position {self.position}"
        return f"{where}: recorded {self.recorded}, new {self.new}"


def require_workflow(registry: Registry, module: str, name: str) -> None:
    """Raises OpsError when the ``-A`` module does not define workflow ``name``."""
    try:
        registry.workflow(name)
    except UnknownWorkflowError:
        known = ", ".join(sorted(registry.workflows)) or "none"
        raise OpsError(f"-A {module} does not define workflow {name!r} (it defines: {known})") from None


def replay_history(registry: Registry, run_id: str, history: Sequence[HistoryEvent]) -> ReplayOutcome:
    """Re-run the workflow code against ``history`` (no side effects: replay emits nothing), checking payloads as
    ``kflow processor`` does (the JSON codecs, the registry's classes), so the code sees the same errors."""
    check = RecordCodec(types=registry.payload_types).payload_check
    try:
        run = Run.replay(registry, history, payload_check=check)
    except NonDeterminismError as exc:
        return ReplayOutcome(run_id, len(history), True, exc.position, exc.recorded, exc.new)
    except KflowError as exc:
        return ReplayOutcome(run_id, len(history), problem=str(exc))
    run.close()
    return ReplayOutcome(run_id, len(history))


def replay_stored(store: RunQueries, registry: Registry, run_id: str) -> ReplayOutcome:
    """Replay the run's history as stored; one that cannot be decoded is reported, not raised."""
    try:
        history = store.events(run_id)
    except SchemaError as exc:  # e.g. cloudpickle payloads and no KFLOW_SECRET
        return ReplayOutcome(run_id, 0, problem=f"its history cannot be decoded: {exc}")
    return replay_history(registry, run_id, history)


def parse_since(text: str, now_ms: int) -> int:
    """``--since``: a duration back from now (``7d``, ``12h``) or an ISO date/time (naive = UTC); epoch ms."""
    try:
        return now_ms - parse_duration(text)
    except InvalidDurationError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise OpsError(
            f"--since {text!r}: expected a duration such as 7d or 12h, or an ISO date/time "
            "such as 2024-05-01 or 2024-05-01T12:00"
        ) from None
    return round((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def runs_of_workflow(
    store: RunQueries, workflow: str, since_ms: int | None = None, limit: int | None = None
) -> list[RunRow]:
    """Recorded runs of ``workflow`` started at or after ``since_ms``, newest first, at most ``limit``."""
    rows: list[RunRow] = []
    page: str | None = None
    while True:
        batch = store.list_runs(workflow=workflow, limit=_PAGE_SIZE, page=page)
        for row in batch.runs:
            if since_ms is not None and row.started_at is not None and row.started_at < since_ms:
                return rows  # newest first: every later row is older still
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                return rows
        if batch.next_page is None:
            return rows
        page = batch.next_page


def replay_runs(
    store: RunQueries, registry: Registry, rows: Sequence[RunRow], on_progress: Callable[[int, ReplayOutcome], None]
) -> list[ReplayOutcome]:
    """Replay each run's history (read one at a time); ``on_progress(done, outcome)`` after each."""
    outcomes = []
    for done, row in enumerate(rows, start=1):
        outcomes.append(replay_stored(store, registry, row.run_id))
        on_progress(done, outcomes[-1])
    return outcomes


def replay_summary(outcomes: Sequence[ReplayOutcome]) -> str:
    """``K of N runs deterministic``, then one line per run that was not."""
    bad = [o for o in outcomes if not o.deterministic]
    lines = [f"{len(outcomes) - len(bad)} of {len(outcomes)} runs deterministic"]
    lines += [f"  {o.run_id}: {o.describe()}" for o in bad]
    return "\n".join(lines)
