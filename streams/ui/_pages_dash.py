"""The dashboard (``/dashboard``): per workflow, runs finished and failed per minute and the failure rate; step latency
percentiles; dead letters per minute; each consumer group's lag now and per minute. From ``/api/stats``' figures
(``streams.ui._stats``), drawn as tables and small inline SVG bar charts."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from engine.runtime import SystemClock
from streams.ui._api import stats_json
from streams.ui._context import context_of
from streams.ui._html import error_box, esc, fragment, page, table, wants_fragment

routes = web.RouteTableDef()

LIVE_EVERY_MS = 5000
_W, _H = 240, 36


def bars(values: Sequence[int | None], label: str, css: str = "") -> str:
    """A bar per minute (None: no sample), scaled to the largest, as inline SVG."""
    top = max((v for v in values if v is not None), default=0) or 1
    width = _W / max(1, len(values))
    rects = "".join(
        f'<rect x="{i * width:.1f}" y="{_H - _H * v / top:.1f}" width="{max(1.0, width - 1):.1f}" '
        f'height="{_H * v / top:.1f}"></rect>'
        for i, v in enumerate(values)
        if v
    )
    return (
        f'<svg class="bars {css}" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{esc(label)}"><title>{esc(label)}</title>{rects}</svg>'
    )


def _workflows(finished: dict[str, dict[str, list[int]]]) -> str:
    rows = []
    for workflow, by_status in sorted(finished.items()):
        minutes = len(next(iter(by_status.values())))
        total = [sum(counts[i] for counts in by_status.values()) for i in range(minutes)]
        failed = by_status.get("failed", [0] * minutes)
        done, bad = sum(total), sum(failed)
        rows.append(
            [
                f'<b class="workflow">{esc(workflow)}</b>',
                str(done),
                str(bad),
                f"{100 * bad / done:.1f}%" if done else "-",
                bars(total, f"{workflow}: runs finished per minute"),
                bars(failed, f"{workflow}: runs failed per minute", "failed"),
            ]
        )
    headers = ["Workflow", "Finished", "Failed", "Failure rate", "Finished per minute", "Failed per minute"]
    return table(headers, rows, "dash-workflows", "no run finished in the window")


def _steps(latency: dict[str, dict[str, float]]) -> str:
    rows = [
        [
            f'<b class="step">{esc(step)}</b>',
            str(int(p["count"])),
            f"{p['p50']:.0f}",
            f"{p['p90']:.0f}",
            f"{p['p99']:.0f}",
        ]
        for step, p in sorted(latency.items())
    ]
    headers = ["Step", "Attempts", "p50 ms", "p90 ms", "p99 ms"]
    return table(headers, rows, "dash-steps", "no step attempt in the window")


def _lag(stats: dict[str, object]) -> str:
    per_minute = stats["lag"]
    assert isinstance(per_minute, dict)
    now = stats["lag_now"]
    assert isinstance(now, list)
    rows = [
        [
            f'<code class="group">{esc(g["group"])}</code>',
            esc(g["topic"]),
            f'<span class="lag">{g["lag"]}</span>',
            bars(per_minute.get(g["group"], []), f"{g['group']}: lag per minute"),
        ]
        for g in now
    ]
    headers = ["Consumer group", "Topic", "Lag now", "Lag per minute (highest)"]
    return table(headers, rows, "dash-lag", "not sampled yet")


def dashboard_body(stats: dict[str, object]) -> str:
    """The dashboard's live region."""
    finished, latency, letters = stats["finished"], stats["step_latency_ms"], stats["dead_letters"]
    assert isinstance(finished, dict) and isinstance(latency, dict) and isinstance(letters, list)
    minutes = len(letters)
    state = "" if stats["caught_up"] else '<p class="note">reading the look-back…</p>'
    if stats.get("skipped_future"):
        ahead = stats["skipped_future"]
        state += f'<p class="note">{ahead} records stamped over a minute ahead of this clock skipped</p>'
    problem = error_box(str(stats["error"])) if stats["error"] else ""
    return (
        problem
        + state
        + f"<h2>Runs finished, last {minutes} minutes</h2>"
        + _workflows(finished)
        + "<h2>Step latency (scheduled to recorded)</h2>"
        + _steps(latency)
        + f"<h2>Dead letters: {sum(letters)}</h2>"
        + bars(letters, "dead letters per minute", "failed")
        + "<h2>Consumer lag</h2>"
        + _lag(stats)
    )


@routes.get("/dashboard")
async def dashboard_page(request: web.Request) -> web.Response:
    """Throughput and failure rate per workflow per minute, step latency percentiles, dead letters, lag."""
    context_of(request)  # the application is the UI's
    body = dashboard_body(stats_json(request.app, SystemClock().now_ms()))
    if wants_fragment(request):
        return fragment(body)
    content = (
        '<h1>Dashboard</h1><label class="live"><input type="checkbox" id="live" checked> live</label>'
        f'<div id="dashboard" data-live="/dashboard?partial=1" data-every="{LIVE_EVERY_MS}">{body}</div>'
    )
    return page(request, "Dashboard", "dashboard", content)
