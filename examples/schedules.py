"""Schedules: recurring runs kept by the orchestrator (``python -m examples.schedules``).

A schedule fires a workflow at the times of a ``ScheduleSpec`` (cron, interval or calendar). Each fire is an
idempotent start of a run whose id is derived from (schedule id, nominal time). The same from a shell:
``kflow schedules create heartbeat --workflow report --interval 1s --args '["eu"]'``, ``kflow schedules show
heartbeat``, ``pause``, ``resume``, ``trigger``, ``backfill --start ISO --end ISO``, ``delete``.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from engine import ScheduleSpec, fire_run_id, step, workflow
from streams import Client
from streams._demo import Say


@step
async def measure(region: str) -> str:
    return f"{region}: all green"


@workflow
async def report(region: str) -> str:
    return await measure(region)


async def _fires(client: Client, schedule_id: str, count: int) -> int:
    while (state := await client.get_schedule(schedule_id)) is None or state.fires < count:
        await asyncio.sleep(0.1)
    return state.fires


async def scenario(client: Client, say: Say) -> None:
    """Fire every second, pause, resume, trigger, backfill the last three minutes, delete."""
    schedule_id = f"heartbeat-{uuid.uuid4().hex[:6]}"
    state = await client.create_schedule(schedule_id, report, ScheduleSpec(interval="1s"), "eu")
    assert state.next_fire_at is not None
    first = state.next_fire_at
    say(f"created {schedule_id}: every second, first fire at {first} (epoch ms)")
    await asyncio.wait_for(_fires(client, schedule_id, 3), 30)
    ids = [fire_run_id(schedule_id, first + 1000 * k) for k in range(3)]
    results = [await client.result(run_id, timeout=30) for run_id in ids]
    say(f"fired 3 times, run ids derived from the nominal times: {results}")

    paused = await client.pause_schedule(schedule_id, note="maintenance")
    await asyncio.sleep(2)
    state = await client.get_schedule(schedule_id)
    assert state is not None
    say(f"paused: {state.fires - paused.fires} fires in 2 s")
    resumed = await client.resume_schedule(schedule_id)
    say(f"resumed: next fire {resumed.next_fire_at} (re-armed from now, nothing made up)")

    triggered = await client.trigger_schedule(schedule_id)
    say(f"triggered run {triggered}: {await client.result(triggered, timeout=30)}")

    await client.update_schedule(schedule_id, overlap="allow_all")  # backfill fires start at once, together
    minute = int(time.time()) // 60 * 60_000
    backfilled = await client.backfill_schedule(schedule_id, minute - 180_000, minute - 177_000)
    results = [await client.result(run_id, timeout=30) for run_id in backfilled]
    say(f"backfilled {len(backfilled)} fires of 3 minutes ago: {results}")

    await client.delete_schedule(schedule_id)
    say(f"deleted: get_schedule -> {await client.get_schedule(schedule_id)}")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.schedules", scenario)
