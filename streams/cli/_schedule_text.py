"""What ``kflow schedules`` prints: schedule tables, texts and JSON, spec descriptions and fire times."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from engine import DEFAULT_CATCHUP_WINDOW, ScheduleSpec
from engine.runtime import ScheduleState
from streams.ops import format_time, table


def schedule_status(state: ScheduleState) -> str:
    """``paused``, ``active`` (a fire is armed) or ``spent`` (no fire left before the spec's ``end_at``)."""
    if state.paused:
        return "paused"
    return "active" if state.next_fire_at is not None else "spent"


def describe_spec(spec: ScheduleSpec) -> str:
    """One line for people: ``cron 0 9 * * 1-5 (Europe/Paris)``, ``every 5m``, ``calendar (2 entries)``."""
    if spec.cron is not None:
        text = f"cron {spec.cron}"
    elif isinstance(spec.interval, timedelta):  # normalised to a timedelta by ScheduleSpec
        text = f"every {_duration(spec.interval)}"
    else:
        text = f"calendar ({len(spec.calendar or ())} entr{'y' if len(spec.calendar or ()) == 1 else 'ies'})"
    if spec.timezone != "UTC" and spec.interval is None:
        text += f" ({spec.timezone})"
    if isinstance(spec.jitter, timedelta) and spec.jitter:
        text += f", jitter {_duration(spec.jitter)}"
    window = timedelta(milliseconds=spec.catchup_window_ms)
    if window != DEFAULT_CATCHUP_WINDOW:
        text += f", catch-up {_duration(window) if window else 'off'}"
    if spec.start_at is not None:
        text += f", from {format_time(spec.start_at)} UTC"
    if spec.end_at is not None:
        text += f", until {format_time(spec.end_at)} UTC"
    return text


def _duration(value: timedelta) -> str:
    ms = value // timedelta(milliseconds=1)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


def spec_of(state: ScheduleState) -> ScheduleSpec:
    """The schedule's spec, decoded from its state."""
    return ScheduleSpec.from_wire(json.loads(state.spec))


def fire_time(ms: int | None, zone: str) -> str:
    """A fire time in UTC, and on the wall clock of ``zone`` too when that is not UTC."""
    if ms is None:
        return "-"
    utc = f"{format_time(ms)} UTC"
    if zone == "UTC":
        return utc
    local = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(zone))
    return (
        f"{utc} = {local.strftime('%Y-%m-%d %H:%M:%S')} {zone} ({local.strftime('%z')[:3]}:{local.strftime('%z')[3:]})"
    )


def armed_text(state: ScheduleState) -> str:
    """``next fire …``, ``paused (…)`` or ``no fire left (…)``: what a changed schedule will do next."""
    if state.paused:
        return "paused (no fire until resumed)"
    if state.next_fire_at is None:
        return "no fire left (past its end)"
    return f"next fire {fire_time(state.next_fire_at, spec_of(state).timezone)}"


def schedules_table(states: list[ScheduleState]) -> str:
    """The ``kflow schedules list`` table."""
    rows = [
        [
            s.schedule_id,
            s.workflow_name,
            describe_spec(spec_of(s)),
            schedule_status(s),
            fire_time(s.next_fire_at, "UTC"),
            s.overlap,
            str(len(s.running)),
            str(s.fires),
            str(s.skipped),
            _count(s.completed),
            _count(s.failed),
            _count(s.cancelled),
        ]
        for s in states
    ]
    headers = ["ID", "WORKFLOW", "WHEN", "STATUS", "NEXT FIRE", "OVERLAP", "RUNNING", "FIRES", "SKIPPED"]
    return table([*headers, "COMPLETED", "FAILED", "CANCELLED"], rows)


def _count(value: int | None) -> str:
    """An outcome counter; ``-`` when the state predates outcome counting (no run of it finished since)."""
    return "-" if value is None else str(value)


def outcomes_text(state: ScheduleState) -> str:
    """``3 completed, 1 failed, 0 cancelled`` (``-`` for a counter a state written before counting lacks)."""
    counts = (("completed", state.completed), ("failed", state.failed), ("cancelled", state.cancelled))
    return ", ".join(f"{_count(value)} {label}" for label, value in counts)


def schedule_text(state: ScheduleState) -> str:
    """The ``kflow schedules show`` text."""
    spec = spec_of(state)
    call = json.dumps({"args": list(state.args.args), "kwargs": state.args.kwargs}, default=repr)
    lines = [
        ("schedule", state.schedule_id),
        ("workflow", f"{state.workflow_name} {call}"),
        ("when", describe_spec(spec)),
        ("status", schedule_status(state)),
        ("next fire", fire_time(state.next_fire_at, spec.timezone)),
        ("overlap", state.overlap),
        ("note", state.note or "-"),
        ("running", ", ".join(state.running) or "-"),
        ("buffered", ", ".join(f"{format_time(t)} UTC" for t in state.buffered) or "-"),
        ("fires", f"{state.fires} started, {state.skipped} skipped"),
        ("outcomes", outcomes_text(state)),
        ("last fire", fire_time(state.last_fire_at, spec.timezone)),
        ("created", f"{format_time(state.created_at)} UTC, updated {format_time(state.updated_at)} UTC"),
        ("recent runs", f"{len(state.recent_runs)}, newest first" if state.recent_runs else "-"),
    ]
    width = max(len(label) for label, _ in lines)
    text = [f"{label.ljust(width)}  {value}" for label, value in lines]
    text.extend(f"  {run_id}" for run_id in reversed(state.recent_runs))
    return "\n".join(text)


def schedule_json(state: ScheduleState) -> dict[str, object]:
    """A schedule's state as JSON-ready data: the record's fields, the spec as an object, and ``status``."""
    return {
        "schedule_id": state.schedule_id,
        "workflow_name": state.workflow_name,
        "args": {"args": list(state.args.args), "kwargs": state.args.kwargs},
        "spec": json.loads(state.spec),
        "overlap": state.overlap,
        "status": schedule_status(state),
        "paused": state.paused,
        "note": state.note,
        "next_fire_at": state.next_fire_at,
        "last_fire_at": state.last_fire_at,
        "running": list(state.running),
        "buffered": list(state.buffered),
        "fires": state.fires,
        "skipped": state.skipped,
        "completed": state.completed,
        "failed": state.failed,
        "cancelled": state.cancelled,
        "recent_runs": list(state.recent_runs),
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "generation": state.generation,
    }
