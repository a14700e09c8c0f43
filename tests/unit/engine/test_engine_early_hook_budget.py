"""Early hook payloads (for a hook the run has not reached yet) are kept within EventLimits.early_hook_bytes per run;
a payload past it is refused with the reason, and leaves no trace (so replay never depends on the budget)."""

from __future__ import annotations

import json

import pytest

from engine import EventLimits, Registry, hook, sleep, workflow
from engine.runtime import HookReceived, Run
from engine.testing import FakeClock, InMemoryDriver

BUDGET = 200


def size(token: str, payload: object) -> int:
    """What one early payload counts: its compact JSON text and its token."""
    return len(json.dumps(payload, separators=(",", ":")).encode()) + len(token)


@workflow
async def collects(names: list[str]) -> list[object]:
    await sleep("1h")
    return [await hook(name) for name in names]


@workflow(event_limits=EventLimits(early_hook_bytes=50))
async def stingy() -> object:
    await sleep("1h")
    return await hook("a")


def driver(clock: FakeClock, always_replay: bool) -> InMemoryDriver:
    limits = EventLimits(early_hook_bytes=BUDGET)
    return InMemoryDriver(Registry([collects, stingy]), clock, always_replay=always_replay, event_limits=limits)


@pytest.mark.parametrize("always_replay", [False, True], ids=["cached", "always_replay"])
async def test_early_payloads_past_the_budget_are_refused_with_the_reason(
    clock: FakeClock, always_replay: bool
) -> None:
    d = driver(clock, always_replay)
    run_id = d.start(collects, ["a", "b", "c"])
    payload = {"text": "x" * 40}
    one = size(f"{run_id}:a", payload)
    assert 2 * one <= BUDGET < 3 * one
    assert d.resume_hook(f"{run_id}:a", payload).ignored is None  # queued
    assert d.resume_hook(f"{run_id}:b", payload).ignored is None
    before = d.history(run_id)
    refused = d.resume_hook(f"{run_id}:c", payload)
    assert refused.ignored is not None and refused.events == () and d.history(run_id) == before  # no trace
    assert f"early hook payload for token '{run_id}:c' refused" in refused.ignored
    assert (
        f"would take {3 * one:,} bytes with this one ({one:,}), over the budget of {BUDGET:,} bytes" in refused.ignored
    )
    assert "EventLimits.early_hook_bytes, KFLOW_EARLY_HOOK_BYTES" in refused.ignored
    clock.advance("1h")
    await d.run_until_idle()  # the hooks take "a" and "b": their bytes no longer count; "c" waits
    assert d.status(run_id) == "running"
    assert d.resume_hook(f"{run_id}:c", payload).ignored is None  # delivered to the waiting hook
    assert d.result(run_id) == [payload, payload, payload]
    assert Run.replay(Registry([collects]), d.history(run_id)).finished


@pytest.mark.parametrize("always_replay", [False, True], ids=["cached", "always_replay"])
async def test_the_budget_frees_as_hooks_take_their_payloads(clock: FakeClock, always_replay: bool) -> None:
    d = driver(clock, always_replay)
    run_id = d.start(collects, ["a", "b", "c", "d"])
    payload = "y" * 60
    assert d.resume_hook(f"{run_id}:a", payload).ignored is None
    assert d.resume_hook(f"{run_id}:b", payload).ignored is None
    assert d.resume_hook(f"{run_id}:d", payload).ignored is not None  # three would be over
    clock.advance("1h")
    await d.run_until_idle()  # "a" and "b" taken; the run waits on "c"
    assert d.resume_hook(f"{run_id}:d", payload).ignored is None  # room again (counted after a replay too)
    assert d.resume_hook(f"{run_id}:c", payload).ignored is None
    await d.run_until_idle()
    assert d.result(run_id) == [payload] * 4
    early = [e for e in d.history(run_id) if isinstance(e, HookReceived) and e.position == -1]
    assert [e.token.rsplit(":", 1)[1] for e in early] == ["a", "b", "d"]


async def test_a_payload_for_a_waiting_hook_is_not_counted(clock: FakeClock) -> None:
    d = driver(clock, False)
    run_id = d.start(collects, ["a"])
    clock.advance("1h")
    await d.run_until_idle()
    big = "z" * (10 * BUDGET)
    assert d.resume_hook(f"{run_id}:a", big).ignored is None
    assert d.result(run_id) == [big]


async def test_a_workflow_s_own_limits_win_and_the_budget_is_validated(clock: FakeClock) -> None:
    d = driver(clock, False)
    run_id = d.start(stingy)
    refused = d.resume_hook(f"{run_id}:a", "w" * 30)
    assert refused.ignored is not None and "over the budget of 50 bytes per run" in refused.ignored
    with pytest.raises(ValueError, match="early_hook_bytes must be a positive int"):
        EventLimits(early_hook_bytes=0)
    assert EventLimits().early_hook_bytes == 1_048_576
