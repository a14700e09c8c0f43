"""The web UI's JSON API (docs/ui.md) against the real Kafka and Cassandra: listings and their filters, a run with its
history, timeline and hooks, cancel and resume, schedules, dead letters, the dashboard's figures, errors; and the
``kflow ui`` command itself."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import ScheduleSpec
from streams import Settings
from support import eventually
from ui_support import UiApp, ui_services

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
async def app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[UiApp]:
    async with ui_services(settings, "uiapi", tmp_path_factory.mktemp("uiapi")) as started:
        yield started


@pytest.fixture(scope="module")
async def http(app: UiApp) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(app.url) as session:
        yield session


async def get(http: aiohttp.ClientSession, path: str, expect: int = 200, **params: Any) -> Any:
    async with http.get(path, params=params) as response:
        assert response.status == expect, await response.text()
        return await response.json()


async def post(http: aiohttp.ClientSession, path: str, body: object, expect: int = 200) -> Any:
    async with http.post(path, json=body) as response:
        assert response.status == expect, await response.text()
        return await response.json()


async def listed(http: aiohttp.ClientSession, run_id: str, **params: Any) -> dict[str, Any]:
    """The run's entry in ``/api/runs`` with ``params``, once the materializer has written it."""

    async def find() -> dict[str, Any] | None:
        page = await get(http, "/api/runs", **params)
        return next((run for run in page["runs"] if run["run_id"] == run_id), None)

    found = await eventually(find, timeout=30, what=f"run {run_id} in /api/runs?{params}")
    assert found is not None
    return found


async def test_listing_filters_by_status_workflow_time_and_id_prefix(app: UiApp, http: aiohttp.ClientSession) -> None:
    failed = await app.client.start("broken", "b-1")
    ok = await app.client.start("quick", "q-1")
    await app.client.result(ok, timeout=30)
    assert (await listed(http, failed, status="failed", workflow="broken"))["error"]["type"].endswith("FatalError")
    quick = await listed(http, ok, workflow="quick", since="10m")
    assert (quick["status"], quick["args"], quick["result"]) == ("completed", ["q-1"], "q-1 prepared")
    assert ok not in [r["run_id"] for r in (await get(http, "/api/runs", status="failed"))["runs"]]
    assert (await get(http, "/api/runs", workflow="quick", until="2000-01-01"))["runs"] == []
    by_prefix = await listed(http, ok, prefix=ok[:6])
    assert by_prefix["workflow"] == "quick"
    assert [r["run_id"] for r in (await get(http, "/api/runs", prefix=ok))["runs"]] == [ok]
    assert (await get(http, "/api/runs", prefix=ok[:6], status="failed"))["runs"] == []


async def test_pages_of_a_listing_follow_one_another(app: UiApp, http: aiohttp.ClientSession) -> None:
    ids = [await app.client.start("quick", f"p-{i}") for i in range(3)]
    for run_id in ids:
        await listed(http, run_id, workflow="quick")
    first = await get(http, "/api/runs", workflow="quick", limit="2")
    assert len(first["runs"]) == 2 and first["next_page"]
    second = await get(http, "/api/runs", workflow="quick", limit="2", page=first["next_page"])
    assert not {r["run_id"] for r in first["runs"]} & {r["run_id"] for r in second["runs"]}
    refused = await get(http, "/api/runs", 400, workflow="other", page=first["next_page"])
    assert "page token" in refused["error"]


async def test_bad_parameters_are_400_with_the_reason(http: aiohttp.ClientSession) -> None:
    assert "status 'lost'" in (await get(http, "/api/runs", 400, status="lost"))["error"]
    assert "since 'yesterday'" in (await get(http, "/api/runs", 400, since="yesterday"))["error"]
    assert "limit '0'" in (await get(http, "/api/runs", 400, limit="0"))["error"]
    assert "no history" in (await get(http, "/api/runs/" + uuid.uuid4().hex, 404))["error"]


async def test_a_run_with_its_history_timeline_and_hook_resumed(app: UiApp, http: aiohttp.ClientSession) -> None:
    run_id = await app.client.start("approval", "o-7")
    token = f"{run_id}:approval"

    async def waiting() -> dict[str, Any] | None:
        run = await get(http, f"/api/runs/{run_id}")
        return run if [h["status"] for h in run["hooks"]] == ["pending"] else None

    run = await eventually(waiting, timeout=30, what="the approval hook pending")
    assert (run["workflow"], run["status"], run["args"], run["hooks"][0]["token"]) == (
        "approval",
        "running",
        ["o-7"],
        token,
    )
    refused = await post(http, "/api/hooks/resume", {"token": token, "payload": {"ok": "maybe"}}, 409)
    assert token in refused["error"] and "not delivered" in refused["error"]
    assert await post(http, "/api/hooks/resume", {"token": token, "payload": {"ok": True, "by": "ana"}}) == {
        "token": token,
        "outcome": "delivered",
    }
    assert await app.client.result(run_id, timeout=30) == "o-7 shipped, approved by ana"
    events = await get(http, f"/api/runs/{run_id}/events")
    assert events[0]["type"] == "WorkflowStarted" and events[-1]["type"] == "WorkflowCompleted"
    timeline = await get(http, f"/api/runs/{run_id}/timeline")
    lanes = [(lane["kind"], lane["title"], [s["state"] for s in lane["segments"]]) for lane in timeline["lanes"]]
    assert lanes == [("step", "prepare", ["ok"]), ("hook", "approval", ["received"]), ("step", "ship", ["ok"])]
    assert timeline["finished"] is True


async def test_cancel_through_the_api(app: UiApp, http: aiohttp.ClientSession) -> None:
    run_id = await app.client.start("stuck", "s-1")
    await eventually(lambda: get(http, f"/api/runs/{run_id}"), timeout=30, what="the run's history")
    assert await post(http, f"/api/runs/{run_id}/cancel", {"reason": "from the ui"}) == {"run_id": run_id, "sent": True}
    run = await eventually(
        lambda: _with_status(http, run_id, "cancelled"), timeout=30, what="the run cancelled (its history)"
    )
    assert run["cancel_reason"] == "from the ui"
    assert await post(http, f"/api/runs/{run_id}/cancel", {}) == {"run_id": run_id, "sent": False}


async def _with_status(http: aiohttp.ClientSession, run_id: str, status: str) -> dict[str, Any] | None:
    run: dict[str, Any] = await get(http, f"/api/runs/{run_id}")
    return run if run["status"] == status else None


async def test_actions_need_json_from_this_origin(app: UiApp, http: aiohttp.ClientSession) -> None:
    run_id = uuid.uuid4().hex
    async with http.post(f"/api/runs/{run_id}/cancel", data="reason=x") as response:
        assert response.status == 403
    async with http.post(f"/api/runs/{run_id}/cancel", json={}, headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
    assert "token" in (await post(http, "/api/hooks/resume", {"payload": 1}, 400))["error"]
    async with http.post("/api/hooks/resume", data="{not json", headers=JSON) as response:
        assert response.status == 400 and "not JSON" in (await response.json())["error"]


async def test_schedules_pause_resume_trigger(app: UiApp, http: aiohttp.ClientSession) -> None:
    schedule_id = f"ui-{uuid.uuid4().hex[:6]}"
    await app.client.schedules.create(schedule_id, "quick", ScheduleSpec(interval="1h"), "from-schedule")
    listed_ids = [s["schedule_id"] for s in await get(http, "/api/schedules")]
    assert schedule_id in listed_ids
    one = await get(http, f"/api/schedules/{schedule_id}")
    assert (one["status"], one["workflow"], len(one["next_fires"])) == ("active", "quick", 5)
    assert one["next_fires"][1] - one["next_fires"][0] == 3_600_000
    assert (await post(http, f"/api/schedules/{schedule_id}/pause", {"note": "ui"}))["status"] == "paused"
    assert (await post(http, f"/api/schedules/{schedule_id}/resume", {}))["status"] == "active"
    run_id = (await post(http, f"/api/schedules/{schedule_id}/trigger", {}))["run_id"]
    assert await app.client.result(run_id, timeout=30) == "from-schedule prepared"
    assert "no schedule" in (await get(http, "/api/schedules/nope-" + schedule_id, 404))["error"]


async def test_dead_letters_listed_and_shown_decoded(app: UiApp, http: aiohttp.ClientSession) -> None:
    run_id = await app.raw.start("no_such_workflow", 1)

    async def letter() -> dict[str, Any] | None:
        found = await get(http, "/api/dlq", filter=f"run={run_id}")
        return found["dead_letters"][0] if found["dead_letters"] else None

    listed_letter = await eventually(letter, timeout=30, what="the dead-lettered start")
    assert listed_letter["record_type"] == "StartWorkflow" and "no_such_workflow" in listed_letter["reason"]
    shown = await get(http, f"/api/dlq/{listed_letter['address']}")
    assert shown["record"]["fields"]["workflow_name"] == "no_such_workflow"
    assert shown["key"] == run_id
    assert (await get(http, "/api/dlq/1:999999", 404))["error"].startswith("no dead letter at 1:999999")
    assert "PARTITION:OFFSET" in (await get(http, "/api/dlq/abc", 400))["error"]


async def test_stats_count_runs_steps_and_lag(app: UiApp, http: aiohttp.ClientSession) -> None:
    run_id = await app.client.start("quick", "stats")
    await app.client.result(run_id, timeout=30)

    async def counted() -> dict[str, Any] | None:
        stats = await get(http, "/api/stats")
        quick = stats["finished"].get("quick", {}).get("completed", [])
        ready = sum(quick) >= 1 and stats["step_latency_ms"].get("prepare") and stats["lag_now"]
        return stats if ready else None

    stats = await eventually(counted, timeout=30, what="the dashboard's figures")
    assert len(stats["minutes"]) == 30 and stats["error"] is None
    assert stats["step_latency_ms"]["prepare"]["count"] >= 1
    assert {lag["group"].rsplit(".", 1)[-1] for lag in stats["lag_now"]} == {
        "orchestrator",
        "workers",
        "delay",
        "materializer",
    }


def ui_command(app: UiApp, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "KFLOW_BOOTSTRAP": app.settings.bootstrap,
        "KFLOW_CASSANDRA": app.settings.cassandra,
        "KFLOW_TOPIC_PREFIX": app.settings.topic_prefix,
        "KFLOW_KEYSPACE": app.settings.keyspace,
    }
    return [sys.executable, "-m", "streams.cli", "ui", *args], env


async def test_kflow_ui_serves_until_interrupted(app: UiApp) -> None:
    command, env = ui_command(app, "--port", "0", "--window", "5")
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=HERE, stdout=PIPE, stderr=PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        assert line.startswith("kflow ui on http://127.0.0.1:"), line
        async with aiohttp.ClientSession(line.split()[3]) as session:
            assert (await get(session, "/api/runs", limit="1"))["runs"] is not None
            async with session.get("/") as page:
                assert page.status == 200 and "<h1>Runs</h1>" in await page.text()
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_kflow_ui_refuses_a_taken_port_in_one_line(app: UiApp) -> None:
    port = app.url.rsplit(":", 1)[1]
    command, env = ui_command(app, "--port", port)
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=HERE, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert (proc.returncode, out) == (1, b""), err
    assert err.decode().startswith(f"kflow: error: cannot listen on 127.0.0.1:{port}: ") and err.count(b"\n") == 1
