"""Memory budgets under a real orchestrator (the short version of ``python -m bench.budgets``): histories past
KFLOW_LIVE_HISTORY_BYTES go to local disk and their runs go on, early hook payloads past KFLOW_EARLY_HOOK_BYTES are
refused with the reason the sender hears, and a schedule whose state reaches the record limit skips fires and keeps
firing. Asserts behaviour and the accounting (``OrchestratorStats``), never times nor RSS (the bench prints those)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import Registry, ScheduleSpec
from streams import Client, HookDeliveryError, Settings
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import eventually

pytestmark = pytest.mark.integration

HISTORY_BUDGET = 64_000  # per partition: far less than the histories of the runs below
EARLY_BUDGET = 50_000  # per run: two payloads of 20 KB
STATE_LIMIT = 999_000  # the largest schedule state the orchestrator writes


@pytest.fixture
async def app(fresh: Settings, tmp_path: Path) -> AsyncIterator[tuple[Client, Orchestrator, StepWorker]]:
    settings = fresh.replace(live_history_bytes=HISTORY_BUDGET, early_hook_bytes=EARLY_BUDGET)
    registry = Registry.from_module("budget_workflows")
    orchestrator = Orchestrator(settings, registry, cache_size=3)  # few live runs: the others replay from disk
    worker = StepWorker(settings, registry, concurrency=8)
    services = [orchestrator, TimerProcessor(settings, state_dir=tmp_path), worker]
    for service in services:
        await service.start()
    async with Client(settings=settings, registry=registry, history="kafka") as client:
        yield client, orchestrator, worker
    for service in reversed(services):
        await service.stop()


async def test_histories_past_the_budget_go_to_disk_and_their_runs_go_on(
    app: tuple[Client, Orchestrator, StepWorker],
) -> None:
    client, orchestrator, worker = app
    run_ids = [await client.start("heavy", 6, 8_000) for _ in range(12)]  # ~50 KB of history each
    await eventually(lambda: worker.stats.steps_run >= 12 * 6, timeout=120, what="every step to run")
    await eventually(lambda: orchestrator.stats.history_evictions > 0, what="histories moved to disk")
    for run_id in run_ids:
        assert await client.resume_hook(f"{run_id}:done", None) in ("delivered", "queued")
    assert [await client.result(run_id, timeout=60) for run_id in run_ids] == [6] * 12
    stats = orchestrator.stats
    assert 0 < stats.history_peak_bytes <= HISTORY_BUDGET and stats.history_bytes <= 2 * HISTORY_BUDGET
    assert stats.history_reads > 0  # runs evicted from the live cache were replayed from their disk copy


async def test_early_hook_payloads_past_the_budget_are_refused_with_the_reason(
    app: tuple[Client, Orchestrator, StepWorker],
) -> None:
    client, _, _ = app
    names = ["a", "b", "c", "d"]
    run_id = await client.start("late_hooks", "3s", names)
    payload = "p" * 20_000
    assert await client.resume_hook(f"{run_id}:a", payload) == "queued"
    assert await client.resume_hook(f"{run_id}:b", payload) == "queued"
    with pytest.raises(HookDeliveryError) as refused:
        await client.resume_hook(f"{run_id}:c", payload)
    assert (
        "early hook payload for token" in refused.value.reason
        and "has not reached that hook() call" in refused.value.reason
    )
    assert f"over the budget of {EARLY_BUDGET:,} bytes per run" in refused.value.reason
    assert "KFLOW_EARLY_HOOK_BYTES" in str(refused.value)

    async def waits_on_c() -> bool:
        try:
            return await client.resume_hook(f"{run_id}:c", payload) == "delivered"
        except HookDeliveryError as exc:  # still asleep: refused again, never dropped silently
            assert "early_hook_bytes" in exc.reason
            return False

    await eventually(waits_on_c, timeout=60, what="the run to reach hook c")
    assert await client.resume_hook(f"{run_id}:d", payload) == "delivered"
    assert await client.result(run_id, timeout=60) == [payload] * 4


async def test_a_schedule_at_the_record_limit_skips_fires_and_keeps_firing(
    app: tuple[Client, Orchestrator, StepWorker],
) -> None:
    client, _, _ = app
    every = ScheduleSpec(interval="1s")
    made = await client.schedules.create("full", "held", every, "x" * 900_000, overlap="allow_all")
    assert made is not None
    room = STATE_LIMIT - 200 - len(client.records.encode(made))  # what is left: a few running runs
    await client.schedules.update("full", args=["x" * (900_000 + room)])

    async def skipping() -> object:
        state = await client.schedules.get("full")
        return state if state is not None and state.skipped >= 3 else None

    full = await eventually(skipping, timeout=60, what="fires skipped at the record limit")
    assert full is not None and 0 < full.fires and len(client.records.encode(full)) <= STATE_LIMIT
    assert full.next_fire_at is not None  # armed: the schedule did not stop
    for run_id in full.running:
        await client.resume_hook(f"{run_id}:release", None)

    async def fires_again() -> bool:
        state = await client.schedules.get("full")
        return state is not None and state.fires >= full.fires + 2

    await eventually(fires_again, timeout=60, what="fires once its runs ended")
    await client.schedules.delete("full")
