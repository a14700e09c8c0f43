"""Hooks: tokens, payloads, timeouts, schemas, on_created."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel

from engine import HookExpiredError, define_hook, hook, step, workflow
from engine.runtime import HookCreated
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


class Approval(BaseModel):
    ok: bool
    by: str


approval_hook = define_hook("approval", Approval)


@step
async def notify(token: str) -> str:
    return f"sent {token}"


async def test_hook_receives_payload_by_token(make_driver: Make) -> None:
    @workflow
    async def wf() -> object:
        payload = await hook("approval")
        return payload

    driver = make_driver(wf)
    run_id = driver.start(wf)
    created = next(e for e in driver.history(run_id) if isinstance(e, HookCreated))
    assert (created.token, created.expires_at) == (f"{run_id}:approval", None)
    assert driver.resume_hook(f"{run_id}:approval", {"ok": True}).ignored is None
    assert driver.result(run_id) == {"ok": True}
    assert driver.resume_hook(f"{run_id}:approval", {"ok": False}).ignored is not None


async def test_hook_timeout_raises_hook_expired(make_driver: Make, clock: FakeClock, event_names: Callable) -> None:
    @workflow
    async def wf() -> str:
        try:
            await hook("approval", timeout="2d")
        except HookExpiredError:
            return "expired"
        return "approved"

    driver = make_driver(wf)
    run_id = driver.start(wf)
    (timer,) = driver.timers()
    assert (timer.kind, timer.timer_id) == ("hook_timeout", "hook_timeout:0:1")
    clock.advance("2d")
    await driver.run_until_idle()
    assert driver.result(run_id) == "expired"
    assert event_names(driver.history(run_id))[-3:] == ["TimerElapsed", "HookExpired", "WorkflowCompleted"]
    late = driver.resume_hook(f"{run_id}:approval", {"ok": True})
    assert late.ignored is not None


async def test_payload_in_time_cancels_the_timeout(make_driver: Make) -> None:
    @workflow
    async def wf() -> object:
        return await hook("approval", timeout="1h")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    driver.resume_hook(f"{run_id}:approval", 42)
    assert driver.result(run_id) == 42
    assert driver.timers() == ()


async def test_typed_hook_validates_and_rejects_bad_payloads(make_driver: Make) -> None:
    @workflow
    async def wf() -> str:
        decision = await approval_hook()
        return f"{decision.ok} by {decision.by}"

    driver = make_driver(wf)
    run_id = driver.start(wf)
    rejected = driver.resume_hook(f"{run_id}:approval", {"ok": "maybe"})
    assert "rejected by its schema" in (rejected.ignored or "")
    assert driver.status(run_id) == "running"
    driver.resume_hook(f"{run_id}:approval", {"ok": True, "by": "ana"})
    assert driver.result(run_id) == "True by ana"


async def test_on_created_may_call_steps(make_driver: Make) -> None:
    @workflow
    async def wf() -> list[object]:
        sent: list[object] = []

        async def announce(token: str) -> None:
            sent.append(await notify(token))

        payload = await hook("approval", on_created=announce)
        return [sent[0], payload]

    driver = make_driver(wf, notify)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    driver.resume_hook(f"{run_id}:approval", "yes")
    await driver.run_until_idle()
    assert driver.result(run_id) == [f"sent {run_id}:approval", "yes"]


@pytest.mark.parametrize("payload", [None, [1, 2], "text"])
async def test_any_payload_shape_without_schema(make_driver: Make, payload: object) -> None:
    @workflow
    async def wf() -> object:
        return await hook("data")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    driver.resume_hook(f"{run_id}:data", payload)
    assert driver.result(run_id) == payload
