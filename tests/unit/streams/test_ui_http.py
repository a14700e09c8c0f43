"""The UI's HTTP layer with a stand-in client (no server): JSON shapes, pages, status codes of errors, the
same-origin check of actions, static files. The real thing: tests/integration/test_ui_*.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import streams.ui as app_module
from engine import RunStatus
from engine.runtime import CallArgs, HistoryEvent, HookCreated, StepScheduled, WorkflowStarted
from storage import StorageError
from streams import HookDeliveryError, RunInfo, RunList, Settings
from streams.ui import StatsCollector, UiContext, build_app, status_of

RUN = "ab12" + "0" * 28
T0 = 1_700_000_000_000
ARGS = CallArgs(("o-1",), {})


class StandIn:
    """What the handlers call on ``Client``, answering from memory (or failing as told)."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.listed: list[dict[str, Any]] = []
        self.events: list[HistoryEvent] = [
            WorkflowStarted(run_id=RUN, seq=1, timestamp=T0, workflow_name="approval", args=ARGS),
            StepScheduled(
                run_id=RUN, seq=2, timestamp=T0, position=0, step_name="prepare", args=ARGS, attempt=1, max_retries=3
            ),
            HookCreated(run_id=RUN, seq=3, timestamp=T0 + 5, position=1, name="approval", token=f"{RUN}:approval"),
        ]

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def list_runs(self, **filters: Any) -> RunList:
        self._check()
        self.listed.append(filters)
        return RunList([RunInfo(RUN, "approval", RunStatus.RUNNING, started_at=T0, args=("o-1",))], "next-token")

    async def get_events(self, run_id: str) -> list[HistoryEvent]:
        self._check()
        return self.events if run_id == RUN else []

    async def resume_hook(self, token: str, payload: object) -> str:
        raise HookDeliveryError.refused(token, "payload rejected by the hook's payload_schema: ok: not a bool")


@pytest.fixture
async def ui() -> AsyncIterator[tuple[TestClient[Any, Any], StandIn]]:
    stand_in = StandIn()
    context = UiContext(Settings(), stand_in, StatsCollector(Settings()))  # type: ignore[arg-type]
    async with TestClient(TestServer(build_app(context))) as client:
        yield client, stand_in


async def test_runs_as_json_with_the_filters_passed_on(ui: tuple[TestClient[Any, Any], StandIn]) -> None:
    client, stand_in = ui
    response = await client.get("/api/runs", params={"status": "running", "prefix": "ab12", "since": "1h"})
    assert response.status == 200
    data = await response.json()
    assert data["next_page"] == "next-token"
    assert data["runs"][0] == {
        **data["runs"][0],
        "run_id": RUN,
        "workflow": "approval",
        "status": "running",
        "args": ["o-1"],
        "duration_ms": None,
    }
    passed = stand_in.listed[-1]
    assert (passed["status"], passed["run_id_prefix"], passed["limit"]) == ("running", "ab12", 50)
    assert isinstance(passed["since"], int) and passed["until"] is None


async def test_pages_render_the_listing_and_the_run_with_its_timeline(ui: tuple[TestClient[Any, Any], StandIn]) -> None:
    client, _ = ui
    listing = await (await client.get("/")).text()
    assert f'href="/runs/{RUN}"' in listing and "<h1>Runs</h1>" in listing and 'id="next-page"' in listing
    fragment = await (await client.get("/", params={"partial": "1"})).text()
    assert fragment.startswith("<table") and "<html" not in fragment
    page = await (await client.get(f"/runs/{RUN}")).text()
    assert 'data-kind="step" data-position="0" data-title="prepare"' in page
    assert f"{RUN}:approval" in page and 'class="action resume"' in page and 'id="cancel-run"' in page
    timeline = await (await client.get(f"/api/runs/{RUN}/timeline")).json()
    assert [(lane["kind"], lane["title"]) for lane in timeline["lanes"]] == [("step", "prepare"), ("hook", "approval")]
    assert (await client.get("/static/ui.css")).status == 200 and (await client.get("/static/ui.js")).status == 200


async def test_errors_have_their_status_and_one_message(ui: tuple[TestClient[Any, Any], StandIn]) -> None:
    client, stand_in = ui
    bad = await client.get("/api/runs", params={"limit": "500"})
    assert (bad.status, await bad.json()) == (400, {"error": "limit '500': expected a whole number from 1 to 200"})
    missing = await client.get("/api/runs/" + "f" * 32)
    assert missing.status == 404 and "has no history" in (await missing.json())["error"]
    refused = await client.post("/api/hooks/resume", json={"token": f"{RUN}:approval", "payload": {"ok": 1}})
    assert refused.status == 409 and "not delivered: payload rejected" in (await refused.json())["error"]
    stand_in.fail = StorageError("Cassandra at 127.0.0.1:9042 is unreachable")
    down = await client.get("/api/runs")
    assert (down.status, await down.json()) == (503, {"error": "Cassandra at 127.0.0.1:9042 is unreachable"})
    page = await client.get("/")
    assert page.status == 503 and "Cassandra at 127.0.0.1:9042 is unreachable" in await page.text()
    assert status_of(TimeoutError("no answer")) == 504 and status_of(RuntimeError("bug")) == 500


async def test_actions_take_json_from_this_origin_only(ui: tuple[TestClient[Any, Any], StandIn]) -> None:
    client, _ = ui
    form = await client.post(f"/api/runs/{RUN}/cancel", data={"reason": "x"})
    assert form.status == 403
    foreign = await client.post(f"/api/runs/{RUN}/cancel", json={}, headers={"Origin": "http://elsewhere.example"})
    assert foreign.status == 403
    no_token = await client.post("/api/hooks/resume", json={"payload": 1})
    assert no_token.status == 400 and "token" in (await no_token.json())["error"]


async def test_only_allowed_hosts_are_answered(ui: tuple[TestClient[Any, Any], StandIn]) -> None:
    client, _ = ui
    port = client.port
    rebound = await client.get("/api/runs", headers={"Host": f"evil.example:{port}"})
    assert rebound.status == 421 and "evil.example" in (await rebound.json())["error"]
    assert (await client.get("/", headers={"Host": "attacker.test"})).status == 421
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert (await client.get("/api/runs", headers={"Host": host})).status == 200, host
    # the Origin is checked against the allowed hosts, not against the (attacker-named) Host
    guard = app_module.HostAllowList(["kflow.example.com", "proxy.test:8443"])
    guard.bind(["0.0.0.0"], 8080)
    assert guard.allows("kflow.example.com") and guard.allows("kflow.example.com:443")
    assert guard.allows("proxy.test:8443") and not guard.allows("proxy.test:80")
    assert guard.allows("localhost:8080") and guard.allows("[::1]:8080") and not guard.allows("localhost:8081")
    assert not guard.allows("evil.example:8080") and not guard.allows("") and not guard.allows("a/b:8080")
    same = {"Host": f"127.0.0.1:{port}", "Origin": f"http://localhost:{port}"}
    assert (await client.post("/api/hooks/resume", json={"payload": 1}, headers=same)).status == 400
    forged = {"Host": "evil.example", "Origin": "http://evil.example"}
    assert (await client.post(f"/api/runs/{RUN}/cancel", json={}, headers=forged)).status == 421
    with pytest.raises(ValueError):
        app_module.split_host("http://x/")
