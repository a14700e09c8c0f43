"""The run page (``/runs/{id}``): status, arguments, outcome, timings, links (parent, children, continue-as-new),
hooks with a resume form, the timeline and the history; a cancel action. Refreshed live while the run runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import web

from engine import RunStatus
from engine.runtime import HistoryEvent
from streams.client import RunInfo
from streams.ops import DlqFilter, HookView, event_fields, letter_json, plain
from streams.ui._context import RunPageData, UiContext, context_of
from streams.ui._html import (
    badge,
    compact_json,
    esc,
    facts,
    fragment,
    href,
    json_block,
    page,
    run_href,
    run_link,
    table,
    took,
    wants_fragment,
    when,
)
from streams.ui._pages_ops import dlq_bounds_note
from streams.ui._shapes import children_of, run_details, run_json
from streams.ui._timeline import timeline_of
from streams.ui._timeline_html import timeline_html

routes = web.RouteTableDef()

LIVE_EVERY_MS = 2000
NO_HISTORY_EVERY_MS = 30_000
"""How often a run page without history refreshes (each refresh reads the dlq, bounded but not cheap)."""
MAX_EVENTS_SHOWN = 500
"""Events the history table shows (the newest); the whole history is ``/api/runs/{id}/events``."""
_BRIEF = 160


@routes.get("/runs/{run_id}")
async def run_page(request: web.Request) -> web.Response:
    """One run, as current as its history."""
    context = context_of(request)
    run_id = request.match_info["run_id"]
    found = await context.run(run_id)
    body = await _no_history(context, run_id) if found.info is None else _run_body(found, context.clock.now_ms())
    if wants_fragment(request):
        return fragment(body)
    done = found.info is not None and found.info.status != RunStatus.RUNNING
    live = href(f"/runs/{quote(run_id, safe='')}", {"partial": "1"})
    every = LIVE_EVERY_MS if found.info is not None else NO_HISTORY_EVERY_MS
    content = (
        f'<h1>Run <code id="run-id">{esc(run_id)}</code></h1>'
        '<label class="live"><input type="checkbox" id="live" checked> live</label>'
        f'<div id="run" data-live="{live}" data-every="{every}"{" data-done" if done else ""}>{body}</div>'
    )
    return page(request, f"Run {run_id}", "runs", content)


@routes.get("/runs/{run_id}/chain")
async def chain_page(request: web.Request) -> web.Response:
    """Every run of the run's continue-as-new chain, oldest first."""
    run_id = request.match_info["run_id"]
    chain = await context_of(request).client.get_chain(run_id)
    rows = [
        [str(index), run_link(info.run_id), badge(str(info.status)), when(info.started_at), when(info.finished_at)]
        for index, info in enumerate(chain, 1)
    ]
    content = f"<h1>Continue-as-new chain of <code>{esc(run_id)}</code></h1>" + table(
        ["#", "Run", "Status", "Started", "Finished"], rows, "chain", "no such run"
    )
    return page(request, "Chain", "runs", content)


def _run_body(found: RunPageData, now_ms: int) -> str:
    info = found.info
    assert info is not None
    details = run_details(info, found.events, found.hooks)
    running = info.status == RunStatus.RUNNING
    head = (
        f'<p class="run-head"><span id="run-status" data-status="{esc(info.status)}">{badge(str(info.status))}</span> '
        f"<b>{esc(info.workflow_name)}</b></p>"
    )
    return (
        head
        + (_cancel_form(info.run_id) if running else "")
        + f'<div class="overview">{facts(_facts(info, details, now_ms))}{_outcome(info, details)}</div>'
        + "<h2>Timeline</h2>"
        + timeline_html(timeline_of(found.events, now_ms))
        + _hooks(found.hooks)
        + _children(found.events)
        + _history(found.events, info.run_id)
    )


def _facts(info: RunInfo, details: dict[str, object], now_ms: int) -> list[tuple[str, str]]:
    data = run_json(info)
    end = info.finished_at if info.finished_at is not None else now_ms
    rows = [
        ("Started", when(info.started_at)),
        ("Finished", when(info.finished_at)),
        ("Duration", took(end - info.started_at) + ("" if info.finished_at is not None else " so far")),
        ("Arguments", f"<code>{compact_json({'args': data['args'], 'kwargs': data['kwargs']})}</code>"),
    ]
    if details.get("cancel_reason"):
        rows.append(("Cancel reason", esc(details["cancel_reason"])))
    if info.idempotency_key:
        rows.append(("Idempotency key", f"<code>{esc(info.idempotency_key)}</code>"))
    if info.parent_run_id:
        rows.append(("Parent", run_link(info.parent_run_id) + f" (position {esc(info.parent_position)})"))
    position = details.get("chain_position")
    if info.continued_from or info.next_run_id or (isinstance(position, int) and position > 1):
        chain = f'link {esc(position)} · <a id="chain-link" href="{run_href(info.run_id)}/chain">whole chain</a>'
        rows.append(("Continue-as-new", chain))
        if info.continued_from:
            rows.append(("Continued from", run_link(info.continued_from)))
        if info.next_run_id:
            rows.append(("Continued as", run_link(info.next_run_id)))
    rows.append(("Events", esc(details["events"])))
    return rows


def _outcome(info: RunInfo, details: dict[str, object]) -> str:
    if info.status == RunStatus.COMPLETED:
        return '<div class="outcome"><h3>Result</h3>' + json_block(details["result"], "json result") + "</div>"
    if info.error is not None:
        error = f'<p class="error-text" id="run-error">{esc(info.error.type)}: {esc(info.error.message)}</p>'
        return f'<div class="outcome"><h3>Error</h3>{error}</div>'
    return ""


def _api_path(run_id: str, tail: str) -> str:
    """``/api/runs/{id}/{tail}``, the run id quoted (a ``/``, ``?`` or ``#`` in it stays in the one path segment)."""
    return f"/api/runs/{quote(run_id, safe='')}/{tail}"


def _cancel_form(run_id: str) -> str:
    return (
        f'<form class="action" id="cancel-form" data-action="{href(_api_path(run_id, "cancel"))}" '
        'data-ok="cancellation sent">'
        '<input name="reason" id="cancel-reason" placeholder="reason (optional)">'
        '<button type="submit" id="cancel-run" class="danger">Cancel run</button>'
        '<span class="result" data-result></span></form>'
    )


def _hooks(hooks: Sequence[HookView]) -> str:
    if not hooks:
        return ""
    rows = []
    for hook in hooks:
        action = _resume_form(hook.token) if hook.status in ("pending", "queued") else ""
        payload = f"<code>{compact_json(hook_payload(hook))}</code>" if hook.payload is not None else ""
        rows.append(
            [
                f'<code class="token">{esc(hook.token)}</code>',
                esc(hook.name),
                badge(hook.status),
                when(hook.created_at),
                when(hook.expires_at),
                when(hook.received_at if hook.received_at is not None else hook.expired_at),
                payload + action,
            ]
        )
    headers = ["Token", "Name", "Status", "Created", "Expires", "Received / expired", "Payload"]
    return "<h2>Hooks</h2>" + table(headers, rows, "hooks")


def hook_payload(hook: HookView) -> object:
    """A hook's payload as JSON can show it."""
    return plain(hook.payload)


def _resume_form(token: str) -> str:
    return (
        f'<form class="action resume" data-action="/api/hooks/resume" data-ok="{{outcome}}" data-token="{esc(token)}">'
        f'<input type="hidden" name="token" value="{esc(token)}">'
        '<textarea name="payload" data-json rows="2" placeholder="{&quot;ok&quot;: true}"></textarea>'
        '<button type="submit" class="resume-hook">Resume</button>'
        '<span class="result" data-result></span></form>'
    )


def _children(events: Sequence[HistoryEvent]) -> str:
    children = children_of(events)
    if not children:
        return ""
    rows = [
        [str(c["position"]), run_link(str(c["run_id"])), esc(c["workflow"]), badge(str(c["status"]))] for c in children
    ]
    return "<h2>Children</h2>" + table(["Position", "Run", "Workflow", "Status"], rows, "children")


def _history(events: Sequence[HistoryEvent], run_id: str) -> str:
    start = events[0].timestamp if events else 0
    rows = []
    earlier = max(0, len(events) - MAX_EVENTS_SHOWN)
    for event in events[earlier:]:
        brief = json.dumps(event_fields(event), default=repr, separators=(", ", ": "))
        brief = brief if len(brief) <= _BRIEF else brief[: _BRIEF - 1] + "…"
        rows.append([str(event.seq), "+" + took(event.timestamp - start), esc(type(event).__name__), esc(brief)])
    table_html = table(["Seq", "At", "Event", "Fields"], rows, "events")
    if earlier:
        every = href(_api_path(run_id, "events"))
        note = f'<p class="note">the last {MAX_EVENTS_SHOWN}; all {len(events)}: <a href="{every}">JSON</a></p>'
        table_html = note + table_html
    return f'<details id="history"><summary>History ({len(events)} events)</summary>{table_html}</details>'


async def _no_history(context: UiContext, run_id: str) -> str:
    found = await context.dead_letters(None, [DlqFilter("run", run_id)], 20)
    rows = [
        [
            f'<a class="dlq-link" href="{href("/dlq/" + str(letter.address))}">{esc(letter.address)}</a>',
            when(letter.failed_at),
            esc(letter.record_type),
            esc(letter_json(letter)["reason"]),
        ]
        for letter in found.letters
    ]
    note = (
        f'<p class="empty" id="no-history">Run <code>{esc(run_id)}</code> has no history (yet): its start may still '
        "be on its way, or it was dead-lettered (below), or it belongs to another topic prefix.</p>"
    )
    return (
        note
        + "<h2>Dead letters of this run (last 7 days)</h2>"
        + table(["Dead letter", "Failed", "Record", "Reason"], rows, "dlq", "none")
        + dlq_bounds_note(found, None)
    )
