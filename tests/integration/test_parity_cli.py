"""The pyworkflow-parity commands through the real console command on the real stack: ``kflow run --arg /
--args-json``, ``kflow runs list --since``, ``kflow runs cancel --wait``, ``kflow hooks list|info`` and
``kflow workflows list|info``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine import RunStatus
from parity_support import Parity, kflow, migrated, new_tag, parity_services
from streams import Settings
from support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parity]:
    async with parity_services(settings, "pcli", tmp_path_factory.mktemp("timers"), materialize=True) as found:
        await migrated(found)
        yield found


async def _with_event(app: Parity, run_id: str, name: str) -> None:
    async def recorded() -> bool:
        return any(type(e).__name__ == name for e in await app.client.get_events(run_id))

    await eventually(recorded, what=f"a {name} in run {run_id}")


async def test_run_takes_keyword_arguments_and_runs_list_since_finds_the_runs(app: Parity) -> None:
    tag = new_tag()
    done = await kflow(
        app.settings, "run", "parity_workflows:summed", "--arg", "a=2", "--arg", f"label={tag}", "--json"
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["result"] == {"label": tag, "total": 2}
    both = '{"args": [3], "kwargs": {"b": 4, "label": "json"}}'
    done = await kflow(app.settings, "run", "parity_workflows:summed", "--args-json", both, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["result"] == {"label": "json", "total": 7}
    second = json.loads(done.stdout)["run_id"]
    first = await app.client.get_run(outcome["run_id"])
    assert first is not None and first.kwargs == {"a": 2, "label": tag}
    since = datetime.fromtimestamp(first.started_at / 1000, UTC).isoformat(timespec="milliseconds")

    async def listed() -> list[str]:
        done = await kflow(app.settings, "runs", "list", "--workflow", "summed", "--since", since, "--json")
        assert done.returncode == 0, done.stderr
        return [run["run_id"] for run in json.loads(done.stdout)["runs"]]

    async def both_listed() -> bool:
        return await listed() == [second, first.run_id]

    await eventually(both_listed, timeout=60, what="both runs listed")
    table = await kflow(app.settings, "runs", "list", "--workflow", "summed", "--since", since, "--limit", "1")
    assert table.stdout.splitlines()[1].split()[0] == second and "next page: --page " in table.stdout
    bad = await kflow(app.settings, "run", "parity_workflows:summed", "--arg", "nokey")
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1) and "expected KEY=VALUE" in bad.stderr


async def test_runs_cancel_waits_for_the_end_and_says_when_there_was_nothing_to_cancel(app: Parity) -> None:
    run_id = await app.client.start("sleeper", new_tag())
    await _with_event(app, run_id, "TimerScheduled")

    async def materialized_running() -> bool:
        return (await kflow(app.settings, "runs", "show", run_id)).returncode == 0

    await eventually(materialized_running, timeout=60, what="the run in Cassandra")
    done = await kflow(app.settings, "runs", "cancel", run_id, "--wait", "--timeout", "60", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"run_id": run_id, "status": "running", "sent": True, "final_status": "cancelled"}
    info = await app.client.get_run(run_id)
    assert info is not None and info.status == RunStatus.CANCELLED

    async def shown_cancelled() -> bool:
        again = await kflow(app.settings, "runs", "cancel", run_id)
        return (
            again.returncode == 0 and again.stdout == f"run {run_id} already finished (cancelled): nothing to cancel\n"
        )

    await eventually(shown_cancelled, timeout=60, what="the cancelled status in Cassandra")
    stubborn = await app.client.start("stubborn", new_tag())
    await _with_event(app, stubborn, "TimerScheduled")

    async def stubborn_materialized() -> bool:
        return (await kflow(app.settings, "runs", "show", stubborn)).returncode == 0

    await eventually(stubborn_materialized, timeout=60, what="the stubborn run in Cassandra")
    late = await kflow(app.settings, "runs", "cancel", stubborn, "--wait", "--timeout", "1")
    assert (late.returncode, late.stdout, late.stderr.count("\n")) == (1, "", 1)
    assert f"kflow: error: run {stubborn} did not finish within 1 s of its cancel request" in late.stderr


async def test_hooks_list_and_info_show_each_hook_with_its_status(app: Parity) -> None:
    run_id = await app.client.start("gate", new_tag())
    await _with_event(app, run_id, "HookCreated")
    assert await app.client.resume_hook(f"{run_id}:approval", {"ok": True}) == "delivered"
    await _with_event(app, run_id, "HookExpired")  # "quick" timed out after 1 s
    assert await app.client.resume_hook(f"{run_id}:early", {"n": 1}) == "queued"  # the run waits on "final"
    expected = {"approval": "received", "quick": "expired", "final": "pending", "early": "queued"}

    async def statuses() -> dict[str, str]:
        done = await kflow(app.settings, "hooks", "list", "--run", run_id, "--json")
        assert done.returncode == 0, done.stderr
        return {hook["name"]: hook["status"] for hook in json.loads(done.stdout)}

    async def as_expected() -> bool:
        return await statuses() == expected

    await eventually(as_expected, timeout=60, what="the hooks materialized")
    running = await kflow(app.settings, "hooks", "list", "--status", "pending", "--json")
    assert running.returncode == 0 and f"{run_id}:final" in [h["token"] for h in json.loads(running.stdout)]
    assert "running runs" in running.stderr
    table = (await kflow(app.settings, "hooks", "list", "--run", run_id)).stdout.splitlines()
    assert table[0].split()[:3] == ["TOKEN", "NAME", "STATUS"] and len(table) == 5
    info = await kflow(app.settings, "hooks", "info", f"{run_id}:approval", "--json")
    data = json.loads(info.stdout)
    assert (data["status"], data["payload"], data["run_status"]) == ("received", {"ok": True}, "running")
    assert data["created_at"] <= data["received_at"] and data["expires_at"] is not None
    text = (await kflow(app.settings, "hooks", "info", f"{run_id}:early")).stdout
    assert "status    queued" in text and 'payload   {"n": 1}' in text
    missing = await kflow(app.settings, "hooks", "info", f"{run_id}:nope")
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1)
    assert f"no hook {run_id}:nope in the history of its run" in missing.stderr
    assert await app.client.cancel(run_id, wait=True) is True


async def test_workflows_list_and_info_read_the_module(app: Parity) -> None:
    listed = await kflow(app.settings, "workflows", "list", "-A", "parity_workflows", "--json")
    data = json.loads(listed.stdout)
    assert {w["name"] for w in data["workflows"]} >= {"summed", "gate", "stubborn"}
    explode = next(s for s in data["steps"] if s["name"] == "explode")
    assert explode["policy"]["max_retries"] == 0 and explode["timeout_ms"] == 60_000
    info = await kflow(app.settings, "workflows", "info", "summed", "-A", "parity_workflows")
    assert info.returncode == 0 and "(a: 'int', b: 'int' = 0, label: 'str' = 'sum')" in info.stdout
