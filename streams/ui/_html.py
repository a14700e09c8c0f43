"""The UI's HTML, server-rendered: the layout (``templates/layout.html``), escaping, and the small pieces every page
uses (status badges, links, tables, times). Everything interpolated goes through ``esc``."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from string import Template
from typing import Final
from urllib.parse import quote, urlencode

from aiohttp import web

from streams.ops import format_duration, format_time
from streams.ui._context import context_of

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
TEMPLATES: Final = HERE / "templates"
NAV: Final = (("runs", "/", "Runs"), ("schedules", "/schedules", "Schedules"), ("dlq", "/dlq", "Dead letters"),
              ("dashboard", "/dashboard", "Dashboard"))  # fmt: skip


def esc(value: object) -> str:
    """``value`` as HTML text (``None`` as ``-``)."""
    return "-" if value is None else html.escape(str(value), quote=True)


@cache
def _layout() -> Template:
    return Template((TEMPLATES / "layout.html").read_text(encoding="utf-8"))


def page(request: web.Request, title: str, active: str, content: str, status: int = 200) -> web.Response:
    """A whole page: ``content`` (HTML) in the layout, ``active`` the navigation entry to highlight."""
    settings = context_of(request).settings
    nav = "".join(
        f'<a href="{href}" class="{"active" if key == active else ""}" id="nav-{key}">{esc(text)}</a>'
        for key, href, text in NAV
    )
    text = _layout().substitute(
        title=esc(title),
        page=esc(active),
        nav=nav,
        where=f"prefix {esc(settings.topic_prefix)} · keyspace {esc(settings.keyspace)}",
        content=content,
    )
    return web.Response(text=text, status=status, content_type="text/html")


def fragment(content: str) -> web.Response:
    """A piece of a page, for the live refresh of the region it replaces."""
    return web.Response(text=content, content_type="text/html")


def wants_fragment(request: web.Request) -> bool:
    """Whether the live refresh asks for the page's live region alone (``?partial=1``)."""
    return request.query.get("partial") == "1"


def href(path: str, query: Mapping[str, str] | None = None) -> str:
    """``path`` with ``query`` encoded (escaped for an attribute)."""
    return esc(path + (f"?{urlencode(query)}" if query else ""))


def run_href(run_id: str) -> str:
    """The run page's address."""
    return esc(f"/runs/{quote(run_id, safe='')}")


def run_link(run_id: str | None, css: str = "run-link") -> str:
    """A link to a run's page (``schedule:{id}`` links to the schedule)."""
    if not run_id:
        return "-"
    if run_id.startswith("schedule:"):
        schedule_id = run_id.removeprefix("schedule:")
        return f'<a href="{esc("/schedules/" + quote(schedule_id, safe=""))}">{esc(run_id)}</a>'
    return f'<a class="{css}" href="{run_href(run_id)}"><code>{esc(run_id)}</code></a>'


def badge(status: str | None) -> str:
    """A coloured status label."""
    return f'<span class="badge s-{esc(status)}">{esc(status)}</span>'


def when(ms: int | None) -> str:
    """Epoch ms as ``YYYY-MM-DD HH:MM:SS UTC`` (``-`` for None), with the raw value for scripts."""
    if ms is None:
        return "-"
    return f'<time data-ms="{ms}">{esc(format_time(ms))} UTC</time>'


def took(ms: int | None) -> str:
    """A duration for people (``-`` for None)."""
    return "-" if ms is None else esc(format_duration(max(0, ms)))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str = "", empty: str = "nothing") -> str:
    """A table of already-rendered cells (``empty`` when there are no rows)."""
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def facts(rows: Sequence[tuple[str, str]], css: str = "facts") -> str:
    """A two-column table of labelled, already-rendered values."""
    body = "".join(f'<tr><th>{esc(label)}</th><td data-fact="{esc(label)}">{value}</td></tr>' for label, value in rows)
    return f'<table class="{css}">{body}</table>'


def json_block(value: object, css: str = "json") -> str:
    """A value as indented JSON."""
    return f'<pre class="{css}">{esc(json.dumps(value, indent=2, default=repr))}</pre>'


def compact_json(value: object) -> str:
    """A value as one line of JSON, escaped."""
    return esc(json.dumps(value, default=repr, separators=(", ", ": ")))


def error_box(message: str) -> str:
    """A visible error message."""
    return f'<p class="error" role="alert">{esc(message)}</p>'
