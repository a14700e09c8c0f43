"""The UI's JSON API (docs/ui.md): what the pages' scripts call, and what scripts of your own may call.

Reads are ``GET``; actions are ``POST`` with a JSON body (``Content-Type: application/json``). Errors answer
``{"error": "..."}`` with 400 (a bad parameter), 404 (nothing there), 409 (refused: a hook payload, a schedule
command), 503 (Kafka or Cassandra unreachable) or 504 (no answer in time).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from engine.runtime import SystemClock
from streams.ops import dlq_show_json, events_rows, letter_json, parse_filter
from streams.ui._context import CONTEXT, context_of
from streams.ui._params import BadRequest, instant, limit_of, run_filters
from streams.ui._shapes import (
    dumps,
    run_details,
    run_json,
    schedule_json,
    timeline_json,
)
from streams.ui._timeline import timeline_of

routes = web.RouteTableDef()


def reply(data: object, status: int = 200) -> web.Response:
    """``data`` as a JSON response."""
    return web.Response(text=dumps(data), status=status, content_type="application/json")


async def body_of(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``).

    Raises:
        BadRequest: not a JSON object.
    """
    text = await request.text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


@routes.get("/api/runs")
async def list_runs(request: web.Request) -> web.Response:
    """One page of runs: filters ``status``, ``workflow``, ``since``, ``until``, ``prefix``; ``limit``, ``page``."""
    context = context_of(request)
    filters = run_filters(request.query, context.clock.now_ms())
    page = await context.list_runs(filters)
    return reply({"runs": [run_json(info) for info in page.runs], "next_page": page.next_page_token})


@routes.get("/api/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """A run, from its history: outcome, timings, links, children, hooks."""
    found = await context_of(request).require_run(request.match_info["run_id"])
    assert found.info is not None
    return reply(run_details(found.info, found.events, found.hooks))


@routes.get("/api/runs/{run_id}/events")
async def get_events(request: web.Request) -> web.Response:
    """A run's history, in order."""
    found = await context_of(request).require_run(request.match_info["run_id"])
    return reply(events_rows(found.events))


@routes.get("/api/runs/{run_id}/timeline")
async def get_timeline(request: web.Request) -> web.Response:
    """A run's history as lanes of segments (steps with their attempts, sleeps, hooks, children)."""
    context = context_of(request)
    found = await context.require_run(request.match_info["run_id"])
    return reply(timeline_json(timeline_of(found.events, context.clock.now_ms())))


@routes.get("/api/runs/{run_id}/chain")
async def get_chain(request: web.Request) -> web.Response:
    """A run's continue-as-new chain, oldest first."""
    chain = await context_of(request).client.get_chain(request.match_info["run_id"])
    if not chain:
        raise web.HTTPNotFound(text=dumps({"error": "no such run"}), content_type="application/json")
    return reply([run_json(info) for info in chain])


@routes.post("/api/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    """Ask a running run to cancel (``Client.cancel``): ``{"reason": "..."}`` optional."""
    body = await body_of(request)
    run_id = request.match_info["run_id"]
    reason = body.get("reason") or None
    sent = await context_of(request).client.cancel(run_id, None if reason is None else str(reason))
    return reply({"run_id": run_id, "sent": sent})


@routes.post("/api/hooks/resume")
async def resume_hook(request: web.Request) -> web.Response:
    """Send a hook payload (``Client.resume_hook``): ``{"token": "...", "payload": <JSON>}``."""
    body = await body_of(request)
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise BadRequest("token: expected the hook's token, e.g. <run_id>:approval")
    if "payload" not in body:
        raise BadRequest("payload: missing (any JSON value)")
    outcome = await context_of(request).client.resume_hook(token, body["payload"])
    return reply({"token": token, "outcome": outcome})


@routes.get("/api/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    """Every schedule, ordered by id."""
    states = await context_of(request).schedules()
    return reply([schedule_json(state) for state in states])


@routes.get("/api/schedules/{schedule_id}")
async def get_schedule(request: web.Request) -> web.Response:
    """One schedule."""
    return reply(schedule_json(await context_of(request).schedule(request.match_info["schedule_id"])))


@routes.post("/api/schedules/{schedule_id}/{action:pause|resume|trigger}")
async def change_schedule(request: web.Request) -> web.Response:
    """Pause, resume or trigger a schedule (``client.schedules``): ``{"note": "..."}`` optional for pause/resume."""
    context = context_of(request)
    schedule_id, action = request.match_info["schedule_id"], request.match_info["action"]
    note = (await body_of(request)).get("note") or None
    schedules = context.client.schedules
    context.forget_schedules()
    if action == "trigger":
        run_id = await schedules.trigger(schedule_id)
        return reply({"schedule_id": schedule_id, "run_id": run_id})
    change = schedules.pause if action == "pause" else schedules.resume
    state = await change(schedule_id, None if note is None else str(note))
    return reply(schedule_json(state))


@routes.get("/api/dlq")
async def list_dead_letters(request: web.Request) -> web.Response:
    """Dead letters, oldest first: ``since`` (default and at most 7d), ``filter`` (repeatable, as ``kflow dlq
    list``), ``limit`` (the newest N, default 100); ``since`` says the bound used, ``capped`` whether the read stopped
    at ``DLQ_MAX_RECORDS`` records."""
    context = context_of(request)
    since = instant(dict(request.query), "since", context.clock.now_ms())
    filters = [parse_filter(text) for text in request.query.getall("filter", []) if text.strip()]
    found = await context.dead_letters(since, filters, limit_of(request.query.get("limit"), 100))
    letters = [letter_json(letter) for letter in found.letters]
    return reply({"dead_letters": letters, "older": found.older, "since": found.since, "capped": found.capped})


@routes.get("/api/dlq/{address}")
async def get_dead_letter(request: web.Request) -> web.Response:
    """One dead letter, with the original record decoded field by field (and its bytes, base64)."""
    return reply(dlq_show_json(await context_of(request).dead_letter(request.match_info["address"])))


@routes.get("/api/stats")
async def get_stats(request: web.Request) -> web.Response:
    """The dashboard's figures: per-minute throughput and failures per workflow, step latency percentiles, dead
    letters, consumer lag."""
    return reply(stats_json(request.app, SystemClock().now_ms()))


def stats_json(app: web.Application, now_ms: int) -> dict[str, object]:
    """What ``/api/stats`` answers."""
    stats = app[CONTEXT].stats
    windows = stats.windows
    return {
        "minutes": windows.minute_starts(now_ms),
        "finished": windows.finished(now_ms),
        "step_latency_ms": {step: dataclasses.asdict(p) for step, p in windows.latencies(now_ms).items()},
        "dead_letters": windows.dead_letters(now_ms),
        "lag": windows.lags(now_ms),
        "lag_now": [{"group": g.group, "topic": g.topic, "lag": g.lag} for g in stats.lags],
        "caught_up": stats.caught_up,
        "skipped_future": windows.skipped,
        "error": stats.error,
    }
