"""Issue 5: a hook payload that arrives before the workflow reaches its ``hook`` call is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from engine import HookExpiredError, Registry, define_hook, hook, sleep, step, workflow
from engine.runtime import HookCreated, HookReceived, ResumeHook, Run
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


class Approval(BaseModel):
    ok: bool
    by: str


approval_hook = define_hook("approval", Approval)


@step
async def work(x: int) -> int:
    return x * 10


def received(driver: InMemoryDriver, run_id: str) -> list[tuple[int, str, object]]:
    return [(e.position, e.token, e.payload) for e in driver.history(run_id) if isinstance(e, HookReceived)]


async def test_payload_before_the_hook_call_is_delivered_when_reached(make_driver: Make, clock: FakeClock) -> None:
    @workflow
    async def wf() -> object:
        await sleep("1h")
        return await hook("approval")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    early = driver.resume_hook(f"{run_id}:approval", {"ok": True})
    assert early.ignored is None
    assert driver.status(run_id) == "running"
    assert received(driver, run_id) == [(-1, f"{run_id}:approval", {"ok": True})]
    clock.advance("1h")
    await driver.run_until_idle()
    assert driver.result(run_id) == {"ok": True}
    history = driver.history(run_id)
    created = [e for e in history if isinstance(e, HookCreated)]
    assert [(e.position, e.token) for e in created] == [(1, f"{run_id}:approval")]
    assert received(driver, run_id) == [
        (-1, f"{run_id}:approval", {"ok": True}),
        (1, f"{run_id}:approval", {"ok": True}),
    ]
    # The history replays from scratch to the same ending.
    assert Run.replay(Registry([wf]), history).finished


async def test_buffered_payload_does_not_start_the_timeout(
    make_driver: Make, clock: FakeClock, event_names: Callable
) -> None:
    @workflow
    async def wf() -> object:
        await sleep("1m")
        return await hook("approval", timeout="1h")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    driver.resume_hook(f"{run_id}:approval", 7)
    clock.advance("1m")
    await driver.run_until_idle()
    assert driver.result(run_id) == 7
    assert driver.timers() == ()
    names = event_names(driver.history(run_id))
    assert "HookExpired" not in names and names.count("TimerScheduled") == 1  # the sleep's only
    clock.advance("2h")
    await driver.run_until_idle()
    assert driver.result(run_id) == 7


async def test_two_early_payloads_to_two_hooks_keep_their_order(make_driver: Make, clock: FakeClock) -> None:
    @workflow
    async def wf() -> list[object]:
        first = await work(1)
        a = await hook("a")
        b = await hook("b")
        again = await hook("a")  # a name waited on again: its second call has the token "{run_id}:a#2"
        return [first, a, b, again]

    driver = make_driver(wf, work)
    run_id = driver.start(wf)
    for token, payload in [("b", "b1"), ("a", "a1"), ("a#2", "a2")]:
        assert driver.resume_hook(f"{run_id}:{token}", payload).ignored is None
    await driver.run_until_idle()
    assert driver.result(run_id) == [10, "a1", "b1", "a2"]
    assert [(p, t.split(":")[1], v) for p, t, v in received(driver, run_id)] == [
        (-1, "b", "b1"),
        (-1, "a", "a1"),
        (-1, "a#2", "a2"),
        (1, "a", "a1"),
        (2, "b", "b1"),
        (3, "a#2", "a2"),
    ]
    assert [e.token for e in driver.history(run_id) if isinstance(e, HookCreated)] == [
        f"{run_id}:a",
        f"{run_id}:b",
        f"{run_id}:a#2",
    ]


async def test_a_token_takes_one_payload_and_a_second_one_is_refused_with_the_reason(
    make_driver: Make, clock: FakeClock
) -> None:
    @workflow
    async def wf() -> list[object]:
        await sleep("1m")
        first = await hook("a")
        try:
            await hook("late", timeout="10m")
        except HookExpiredError:
            pass
        return [first, await hook("a")]

    driver = make_driver(wf)
    run_id = driver.start(wf)
    assert driver.resume_hook(f"{run_id}:a", 1).ignored is None  # early: queued
    queued = driver.resume_hook(f"{run_id}:a", 2).ignored
    assert queued == (
        f"hook token '{run_id}:a' already has a payload waiting for its hook() call: a token takes one payload"
    )
    clock.advance("1m")
    await driver.run_until_idle()
    received_twice = driver.resume_hook(f"{run_id}:a", 3).ignored
    assert received_twice == f"hook token '{run_id}:a' already received its payload: a token takes one payload"
    clock.advance("10m")
    await driver.run_until_idle()
    expired = driver.resume_hook(f"{run_id}:late", 4).ignored
    assert expired == f"hook token '{run_id}:late' has expired: a token takes one payload"
    assert driver.resume_hook(f"{run_id}:a#2", 5).ignored is None
    assert driver.result(run_id) == [1, 5]
    history = driver.history(run_id)
    assert [e.payload for e in history if isinstance(e, HookReceived)] == [1, 1, 5]  # the refused left no trace


async def test_a_run_rebuilt_from_its_history_refuses_the_same_payloads(clock: FakeClock) -> None:
    @workflow
    async def wf() -> list[object]:
        return [await hook("a"), await hook("a")]

    live = InMemoryDriver(Registry([wf]), clock)
    run_id = live.start(wf)
    live.resume_hook(f"{run_id}:a", 1)
    live.resume_hook(f"{run_id}:a#2", 2)
    assert live.result(run_id) == [1, 2]
    prefix = live.history(run_id)[:-2]  # ends at HookCreated of a#2: "a" received, "a#2" waiting
    rebuilt = Run.replay(Registry([wf]), prefix)  # a cache miss: the run comes back from its history
    again = rebuilt.handle(ResumeHook(run_id=run_id, token=f"{run_id}:a", payload=9, requested_at=0), 0)
    assert again.ignored == f"hook token '{run_id}:a' already received its payload: a token takes one payload"
    assert (
        rebuilt.handle(ResumeHook(run_id=run_id, token=f"{run_id}:a#2", payload=3, requested_at=0), 0).ignored is None
    )


async def test_payloads_for_an_abandoned_wait_or_a_token_no_call_can_have_are_refused(
    make_driver: Make, clock: FakeClock
) -> None:
    @workflow
    async def wf() -> object:
        waiting = asyncio.ensure_future(hook("a"))
        await sleep("1m")
        waiting.cancel()
        return await hook("a")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    for bad in ("a#1", "a#0", "a#02", "a#x", "a#"):
        refused = driver.resume_hook(f"{run_id}:{bad}", 0).ignored
        assert refused is not None and "is no hook token" in refused, (bad, refused)
    clock.advance("1m")
    await driver.run_until_idle()
    refused = driver.resume_hook(f"{run_id}:a", 1).ignored
    assert refused == (
        f"hook token '{run_id}:a' is no longer awaited (the run cancelled that wait): a token takes one payload"
    )
    assert driver.resume_hook(f"{run_id}:a#2", 2).ignored is None
    assert driver.result(run_id) == 2


async def test_a_hook_name_with_a_hash_fails_the_run_clearly(make_driver: Make) -> None:
    @workflow
    async def wf() -> object:
        return await hook("a#2")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    assert driver.status(run_id) == "failed"
    with pytest.raises(Exception, match="contains '#'"):
        driver.result(run_id)


async def test_payload_for_another_runs_token_is_ignored(make_driver: Make) -> None:
    @workflow
    async def wf() -> object:
        return await hook("approval")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    misrouted = ResumeHook(run_id=run_id, token="someone-else:approval", payload=1, requested_at=0)
    transition = driver.deliver(misrouted)
    assert transition.ignored == f"token 'someone-else:approval' does not belong to run {run_id}"
    assert received(driver, run_id) == []
    driver.resume_hook(f"{run_id}:approval", 2)
    assert driver.result(run_id) == 2


async def test_buffered_payload_rejected_by_schema_is_dropped(make_driver: Make, clock: FakeClock) -> None:
    @workflow
    async def wf() -> str:
        await sleep("1m")
        decision = await approval_hook(timeout="1h")
        return f"{decision.ok} by {decision.by}"

    driver = make_driver(wf)
    run_id = driver.start(wf)
    driver.resume_hook(f"{run_id}:approval", {"ok": "maybe"})
    clock.advance("1m")
    await driver.run_until_idle()
    assert driver.status(run_id) == "running"  # the bad payload was dropped, the hook waits
    (timer,) = driver.timers()
    assert timer.kind == "hook_timeout"
    driver.resume_hook(f"{run_id}:approval", {"ok": True, "by": "ana"})
    assert driver.result(run_id) == "True by ana"
    assert [p for p, _, _ in received(driver, run_id)] == [-1, 1]


async def test_buffered_delivery_keeps_concurrent_positions_deterministic(make_driver: Make, clock: FakeClock) -> None:
    @workflow
    async def wf() -> list[object]:
        async def branch_hook() -> list[object]:
            got = await hook("go")
            return [got, await work(1)]

        async def branch_step() -> int:
            return await work(2)

        await sleep("1m")
        left, right = await asyncio.gather(branch_hook(), branch_step())
        return [*left, right]

    driver = make_driver(wf, work)
    run_id = driver.start(wf)
    driver.resume_hook(f"{run_id}:go", "yes")
    clock.advance("1m")
    await driver.run_until_idle()
    assert driver.result(run_id) == ["yes", 10, 20]
    assert Run.replay(Registry([wf, work]), driver.history(run_id)).finished
