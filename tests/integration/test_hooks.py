"""Hook payloads on the real broker: each one is answered — delivered, queued until the workflow reaches its
hook, or refused with the reason — and ``Client.resume_hook`` / ``kflow hooks resume`` report which."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from engine import CancellationError, Registry
from engine.runtime import HookReceived
from streams import Client, HookDeliveryError, Settings, Topics, create_topics
from streams.processors import Orchestrator

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class App:
    settings: Settings
    client: Client


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[App]:
    """An orchestrator for ``hook_workflows`` (hooks only: no worker or timer processor needed)."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-hooks")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("hook_workflows")
    orchestrator = Orchestrator(own, registry)
    await orchestrator.start()
    async with Client(settings=own, registry=registry) as client:
        yield App(own, client)
    await orchestrator.stop()


async def test_a_payload_for_a_waiting_hook_is_delivered(app: App) -> None:
    run_id = await app.client.start("approve", "o-1")  # processed before the payload: the hook waits
    assert await app.client.resume_hook(f"{run_id}:approval", {"ok": True}) == "delivered"
    assert await app.client.result(run_id, timeout=30) == {"order_id": "o-1", "approved": True}


async def test_payloads_sent_before_the_hook_is_reached_are_queued_then_delivered(app: App) -> None:
    run_id = await app.client.start("approve_when_ready")  # waits on "ready" before "approval" (twice)
    assert await app.client.resume_hook(f"{run_id}:approval", {"n": 1}) == "queued"
    assert await app.client.resume_hook(f"{run_id}:approval#2", {"n": 2}) == "queued"  # the second call's token
    assert await app.client.resume_hook(f"{run_id}:ready", None) == "delivered"
    assert await app.client.result(run_id, timeout=30) == [{"n": 1}, {"n": 2}]
    received = [e for e in await app.client.get_events(run_id) if isinstance(e, HookReceived)]
    assert [(e.token.partition(":")[2], e.position) for e in received][:3] == [
        ("approval", -1),
        ("approval#2", -1),
        ("ready", 0),
    ]


async def test_a_second_payload_for_a_token_is_refused_whether_queued_or_delivered(app: App) -> None:
    run_id = await app.client.start("approve_when_ready")
    token = f"{run_id}:approval"
    assert await app.client.resume_hook(token, {"n": 1}) == "queued"
    with pytest.raises(HookDeliveryError) as refused:
        await app.client.resume_hook(token, {"n": 2})
    assert refused.value.reason == (
        f"hook token {token!r} already has a payload waiting for its hook() call: a token takes one payload"
    )
    assert await app.client.resume_hook(f"{run_id}:ready", None) == "delivered"
    with pytest.raises(HookDeliveryError) as refused:
        await app.client.resume_hook(f"{run_id}:ready", None)
    assert (
        refused.value.reason == f"hook token '{run_id}:ready' already received its payload: a token takes one payload"
    )
    assert await app.client.resume_hook(f"{token}#2", {"n": 3}) == "delivered"
    assert await app.client.result(run_id, timeout=30) == [{"n": 1}, {"n": 3}]


async def test_a_payload_for_an_unknown_run_is_refused_with_the_reason(app: App) -> None:
    run_id = uuid.uuid4().hex
    for _ in range(2):  # an equal payload sent again gets its own answer
        with pytest.raises(HookDeliveryError) as refused:
            await app.client.resume_hook(f"{run_id}:approval", {"ok": True})
        assert refused.value.token == f"{run_id}:approval"
        assert refused.value.reason == f"no run {run_id} on this partition"
        assert str(refused.value) == (
            f"hook payload for {run_id}:approval not delivered: no run {run_id} on this partition"
        )
        assert refused.value.retryable is False


async def test_a_payload_for_a_finished_run_is_refused(app: App) -> None:
    completed = await app.client.start("instant")
    assert await app.client.result(completed, timeout=30) == "done"
    with pytest.raises(HookDeliveryError, match=f"not delivered: run {completed} is completed$"):
        await app.client.resume_hook(f"{completed}:approval", {"ok": True})
    cancelled = await app.client.start("approve", "o-2")
    await app.client.cancel(cancelled)
    with pytest.raises(CancellationError):
        await app.client.result(cancelled, timeout=30)
    with pytest.raises(HookDeliveryError, match=f"not delivered: run {cancelled} is cancelled$"):
        await app.client.resume_hook(f"{cancelled}:approval", {"ok": True})


async def test_a_payload_the_hooks_schema_rejects_is_refused_and_the_hook_keeps_waiting(app: App) -> None:
    run_id = await app.client.start("approve_typed")
    with pytest.raises(HookDeliveryError, match="rejected by its schema") as refused:
        await app.client.resume_hook(f"{run_id}:approval", {"ok": "maybe"})
    assert "by" in refused.value.reason  # pydantic names the missing field
    assert await app.client.resume_hook(f"{run_id}:approval", {"ok": True, "by": "ana"}) == "delivered"
    assert await app.client.result(run_id, timeout=30) == "True by ana"


async def test_without_wait_the_payload_is_only_sent(app: App) -> None:
    run_id = await app.client.start("approve", "o-3")
    assert await app.client.resume_hook(f"{run_id}:approval", {"ok": False}, wait=False) == "sent"
    assert await app.client.result(run_id, timeout=30) == {"order_id": "o-3", "approved": False}


async def test_no_answer_within_the_timeout_is_a_timeout_error(settings: Settings) -> None:
    idle = settings.replace(topic_prefix=f"{settings.topic_prefix}-hooks-idle")  # no processor
    await create_topics(idle.bootstrap, Topics(idle.topic_prefix), idle.partitions)
    async with Client(settings=idle) as client:
        with pytest.raises(TimeoutError, match="no answer to the hook payload for r1:approval within 1 s"):
            await client.resume_hook("r1:approval", {"ok": True}, timeout=1.0)


def _kflow(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": app.settings.topic_prefix,
        "KFLOW_BOOTSTRAP": app.settings.bootstrap,
        "KFLOW_PARTITIONS": str(app.settings.partitions),
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "hooks", "resume", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_the_cli_says_delivered_or_queued(app: App) -> None:
    run_id = await app.client.start("approve_when_ready")
    queued = await asyncio.to_thread(_kflow, app, f"{run_id}:approval", '{"n": 1}')
    assert (queued.returncode, queued.stdout) == (
        0,
        f"queued (no hook is waiting on {run_id}:approval yet; it is delivered when the workflow reaches it)\n",
    ), queued.stderr
    sent = await asyncio.to_thread(_kflow, app, f"{run_id}:approval#2", '{"n": 2}', "--no-wait")
    assert (sent.returncode, sent.stdout.split()[0]) == (0, "sent"), sent.stderr
    delivered = await asyncio.to_thread(_kflow, app, f"{run_id}:ready", "null")
    assert (delivered.returncode, delivered.stdout) == (0, "delivered\n"), delivered.stderr
    assert await app.client.result(run_id, timeout=30) == [{"n": 1}, {"n": 2}]


async def test_the_cli_reports_a_refused_payload_in_one_line_and_exits_1(app: App) -> None:
    run_id = uuid.uuid4().hex
    done = await asyncio.to_thread(_kflow, app, f"{run_id}:approval", '{"ok": true}')
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"kflow: error: hook payload for {run_id}:approval not delivered: no run {run_id} on this partition\n"
    )
