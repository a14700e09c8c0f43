"""The schedules pages (``/schedules``, ``/schedules/{id}``: state, next fires, recent runs; pause, resume, trigger)
and the dead letters pages (``/dlq``, ``/dlq/{address}``: reason, the record decoded, a link to its run)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from engine.runtime import ScheduleState
from streams.ops import DeadLetterView, decoded_record, parse_filter
from streams.ui._context import DLQ_MAX_RECORDS, DeadLetters, context_of
from streams.ui._html import (
    badge,
    compact_json,
    error_box,
    esc,
    facts,
    fragment,
    href,
    json_block,
    page,
    run_link,
    table,
    wants_fragment,
    when,
)
from streams.ui._params import BadRequest, instant, limit_of
from streams.ui._shapes import next_fires, schedule_status, spec_of

routes = web.RouteTableDef()

LIVE_EVERY_MS = 3000


def _schedule_href(schedule_id: str) -> str:
    return esc("/schedules/" + quote(schedule_id, safe=""))


def _actions(state: ScheduleState) -> str:
    base = "/api/schedules/" + quote(state.schedule_id, safe="")
    toggle = "resume" if state.paused else "pause"
    return (
        f'<form class="action inline" data-action="{esc(base)}/{toggle}" data-ok="{toggle}d">'
        f'<button type="submit" class="schedule-{toggle}" data-schedule="{esc(state.schedule_id)}">{toggle}</button>'
        '<span class="result" data-result></span></form>'
        f'<form class="action inline" data-action="{esc(base)}/trigger" data-ok="started {{run_id}}">'
        f'<button type="submit" class="schedule-trigger" data-schedule="{esc(state.schedule_id)}">trigger</button>'
        '<span class="result" data-result></span></form>'
    )


def _outcomes(state: ScheduleState) -> str:
    counts = (state.completed, state.failed, state.cancelled)
    return "-" if None in counts else "{} completed, {} failed, {} cancelled".format(*counts)


@routes.get("/schedules")
async def schedules_page(request: web.Request) -> web.Response:
    """Every schedule with its state, next fire, counters and actions."""
    states = await context_of(request).schedules()
    rows = [
        [
            f'<a class="schedule-link" href="{_schedule_href(s.schedule_id)}">{esc(s.schedule_id)}</a>',
            esc(s.workflow_name),
            f'<span class="schedule-status" data-schedule="{esc(s.schedule_id)}">{badge(schedule_status(s))}</span>',
            esc(_spec_text(s)),
            when(s.next_fire_at),
            str(s.fires),
            str(s.skipped),
            esc(_outcomes(s)),
            _actions(s),
        ]
        for s in states
    ]
    headers = ["Schedule", "Workflow", "Status", "Spec", "Next fire", "Fires", "Skipped", "Runs ended", ""]
    body = table(headers, rows, "schedules", "no schedules")
    if wants_fragment(request):
        return fragment(body)
    content = (
        "<h1>Schedules</h1>"
        f'<div id="schedules" data-live="/schedules?partial=1" data-every="{LIVE_EVERY_MS}">{body}</div>'
    )
    return page(request, "Schedules", "schedules", content)


@routes.get("/schedules/{schedule_id}")
async def schedule_page(request: web.Request) -> web.Response:
    """One schedule: its spec, next fires, counters, running and recent runs."""
    schedule_id = request.match_info["schedule_id"]
    state = await context_of(request).schedule(schedule_id)
    rows = [
        ("Workflow", esc(state.workflow_name)),
        ("Status", f'<span class="schedule-status">{badge(schedule_status(state))}</span>'),
        ("Spec", f"{esc(_spec_text(state))} <code>{compact_json(spec_of(state).to_wire())}</code>"),
        ("Overlap", esc(state.overlap)),
        ("Arguments", f"<code>{compact_json({'args': list(state.args.args), 'kwargs': state.args.kwargs})}</code>"),
        ("Next fires", "<br>".join(when(ms) for ms in next_fires(state)) or "-"),
        ("Last fire", when(state.last_fire_at)),
        ("Fires / skipped", f"{state.fires} / {state.skipped}"),
        ("Runs ended", esc(_outcomes(state))),
        ("Note", esc(state.note)),
        ("Running", " ".join(run_link(r) for r in state.running) or "-"),
        ("Recent runs", " ".join(run_link(r) for r in reversed(state.recent_runs)) or "-"),
    ]
    body = facts(rows) + _actions(state)
    if wants_fragment(request):
        return fragment(body)
    live = href(f"/schedules/{schedule_id}", {"partial": "1"})
    content = (
        f"<h1>Schedule <code>{esc(schedule_id)}</code></h1>"
        f'<div id="schedule" data-live="{live}" data-every="{LIVE_EVERY_MS}">{body}</div>'
    )
    return page(request, f"Schedule {schedule_id}", "schedules", content)


def _spec_text(state: ScheduleState) -> str:
    spec = spec_of(state)
    if spec.cron is not None:
        text = f"cron {spec.cron}"
    elif spec.interval is not None:
        text = f"every {spec.interval}"
    else:
        text = f"calendar ({len(spec.calendar or ())} entries)"
    return text if spec.timezone == "UTC" else f"{text} ({spec.timezone})"


@routes.get("/dlq")
async def dlq_page(request: web.Request) -> web.Response:
    """Dead letters (default: the last 7 days, the newest 100), oldest first, with a filter."""
    context = context_of(request)
    query = {name: value.strip() for name, value in request.query.items() if value.strip()}
    try:
        since = instant(query, "since", context.clock.now_ms())
        limit = limit_of(query.get("limit"), 100)
    except BadRequest as exc:
        return page(request, "Dead letters", "dlq", "<h1>Dead letters</h1>" + _dlq_form(query) + error_box(str(exc)))
    filters = [parse_filter(query["filter"])] if "filter" in query else []
    found = await context.dead_letters(since, filters, limit)
    rows = [_letter_row(letter) for letter in found.letters]
    headers = ["Dead letter", "Failed", "From", "Record", "Run", "Redriven", "Reason"]
    body = table(headers, rows, "dlq", "no dead letters")
    if found.older:
        body += f'<p class="note">{found.older} older not shown (limit, since)</p>'
    body += dlq_bounds_note(found, since)
    content = "<h1>Dead letters</h1>" + _dlq_form(query) + f'<div id="dlq">{body}</div>'
    return page(request, "Dead letters", "dlq", content)


def dlq_bounds_note(found: DeadLetters, asked: int | None) -> str:
    """What the read of ``found`` left out: older than the look-back, or beyond the records read per request."""
    notes = []
    if asked is not None and asked < found.since:
        notes.append(f"failed since {esc(when(found.since))} only (the UI looks back 7 days at most)")
    if found.capped:
        notes.append(f"only the newest {DLQ_MAX_RECORDS:,} records of the dlq were read (kflow dlq list reads all)")
    return "".join(f'<p class="note dlq-bounds">{note}</p>' for note in notes)


def _dlq_form(query: dict[str, str]) -> str:
    return (
        '<form class="filters" method="get" action="/dlq">'
        f'<label>Failed since <input name="since" value="{esc(query.get("since", ""))}" placeholder="7d"></label>'
        f'<label>Filter <input name="filter" value="{esc(query.get("filter", ""))}" '
        'placeholder="type=StartWorkflow, reason=…, run=…, or text"></label>'
        '<button type="submit">Filter</button></form>'
    )


def _letter_row(letter: DeadLetterView) -> list[str]:
    reason = " ".join(letter.reason.split())
    return [
        f'<a class="dlq-link" href="{href("/dlq/" + str(letter.address))}">{esc(letter.address)}</a>',
        when(letter.failed_at),
        esc(letter.origin),
        esc(letter.record_type),
        run_link(letter.run_id) if letter.key is not None else "-",
        "redriven" if letter.redrive is not None else "-",
        esc(reason if len(reason) <= 140 else reason[:139] + "…"),
    ]


@routes.get("/dlq/{address}")
async def dead_letter_page(request: web.Request) -> web.Response:
    """One dead letter: where it came from, why it failed, the original record decoded, a link to its run."""
    letter = await context_of(request).dead_letter(request.match_info["address"])
    redrive = letter.redrive
    rows = [
        ("Failed", when(letter.failed_at)),
        ("From", esc(letter.origin)),
        ("Run", run_link(letter.run_id, "run-link dlq-run") if letter.key is not None else "-"),
        ("Record", f"{esc(letter.record_type)} ({len(letter.value):,} bytes)"),
        ("Error type", esc(letter.error_type)),
        ("Reason", f'<span class="error-text" id="dlq-reason">{esc(letter.reason)}</span>'),
        ("Redriven", "no" if redrive is None else f"{when(redrive.at)} to {esc(redrive.to)}"),
    ]
    content = (
        f"<h1>Dead letter <code>{esc(letter.address)}</code></h1>"
        + facts(rows)
        + "<h2>The record, decoded</h2>"
        + json_block(decoded_record(letter.value), "json record")
    )
    return page(request, f"Dead letter {letter.address}", "dlq", content)
