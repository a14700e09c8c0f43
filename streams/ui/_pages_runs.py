"""The runs page (``/``): filters (status, workflow, start time, run id prefix), one page at a time, live refresh."""

from __future__ import annotations

from aiohttp import web

from engine import RunStatus
from streams.client import RunList
from streams.ui._context import context_of
from streams.ui._html import badge, error_box, esc, fragment, href, page, run_link, table, took, wants_fragment, when
from streams.ui._params import BadRequest, RunFilters, run_filters

routes = web.RouteTableDef()

LIVE_EVERY_MS = 3000


@routes.get("/")
async def runs_page(request: web.Request) -> web.Response:
    """Runs, newest first (by a run id prefix: in id order), with the filter form and a live-refreshed table."""
    context = context_of(request)
    problem = None
    try:
        filters = run_filters(request.query, context.clock.now_ms())
    except BadRequest as exc:
        filters, problem = RunFilters(), str(exc)
    listed = None
    if problem is None:
        try:
            listed = await context.list_runs(filters)
        except BadRequest as exc:
            problem = str(exc)
    body = error_box(problem) if problem else _listing(filters, listed)
    if wants_fragment(request):
        return fragment(body)
    workflows = sorted(context.stats.windows.finished(context.clock.now_ms()))
    live = href("/", {**filters.query(), "partial": "1"})
    content = (
        "<h1>Runs</h1>"
        + _form(filters, workflows)
        + f'<div id="runs" data-live="{live}" data-every="{LIVE_EVERY_MS}">{body}</div>'
    )
    return page(request, "Runs", "runs", content)


def _form(filters: RunFilters, workflows: list[str]) -> str:
    statuses = "".join(
        f'<option value="{s.value}"{" selected" if filters.status == s.value else ""}>{s.value}</option>'
        for s in RunStatus
    )
    options = "".join(f'<option value="{esc(name)}">' for name in workflows)

    def field(name: str, label: str, value: str | None, hint: str) -> str:
        return (
            f'<label>{esc(label)} <input name="{name}" id="filter-{name}" value="{esc(value or "")}" '
            f'placeholder="{esc(hint)}"{" list=workflows" if name == "workflow" else ""}></label>'
        )

    return (
        '<form class="filters" method="get" action="/" id="filters">'
        '<label>Status <select name="status" id="filter-status">'
        f'<option value="">any</option>{statuses}</select></label>'
        + field("workflow", "Workflow", filters.workflow, "name")
        + f'<datalist id="workflows">{options}</datalist>'
        + field("since", "Started since", filters.since, "1h, 7d, 2025-05-01T12:00")
        + field("until", "before", filters.until, "age or ISO time (UTC)")
        + field("prefix", "Run id", filters.prefix, "id, or its first 4+ characters")
        + f'<label>Per page <input name="limit" id="filter-limit" type="number" min="1" max="200" '
        f'value="{filters.limit}"></label>'
        '<button type="submit" id="apply-filters">Filter</button> <a href="/" id="clear-filters">clear</a>'
        '<label class="live"><input type="checkbox" id="live" checked> live</label>'
        "</form>"
    )


def _listing(filters: RunFilters, listed: RunList | None) -> str:
    assert listed is not None
    rows = [
        [
            run_link(info.run_id),
            esc(info.workflow_name),
            badge(str(info.status)),
            when(info.started_at),
            took(None if info.finished_at is None else info.finished_at - info.started_at),
        ]
        for info in listed.runs
    ]
    order = "in run id order" if filters.prefix else "newest first"
    text = table(["Run", "Workflow", "Status", "Started", "Duration"], rows, "runs", "no runs match")
    count = len(listed.runs)
    pager = [f'<span class="note">{count} run{"" if count == 1 else "s"}, {order}</span>']
    if filters.page:
        pager.append(f'<a id="first-page" href="{href("/", filters.query(page=None))}">first page</a>')
    if listed.next_page_token:
        pager.append(
            f'<a id="next-page" href="{href("/", filters.query(page=listed.next_page_token))}">next page →</a>'
        )
    return text + f'<p class="pager">{" · ".join(pager)}</p>'
