"""Schedules: recurring runs kept by the orchestrator (``python -m examples.schedules``).

A schedule fires a workflow at the times of a ``ScheduleSpec`` (cron, interval or calendar). Each fire is an
idempotent start of a run whose id is derived from (schedule id, nominal time). The same from a shell:
``kflow schedules create heartbeat --workflow report --interval 1s --args '["eu"]'``, ``kflow schedules show
heartbeat``, ``pause``, ``resume``, ``trigger``, ``backfill --start ISO --end ISO``, ``delete``.

``morning_report`` declares its schedule in code (``@scheduled_workflow``); activation makes it exist, at every
deploy: ``client.schedules.activate("examples.schedules")`` or ``kflow schedules activate -A examples.schedules``.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from engine import ScheduleSpec, fire_run_id, scheduled_workflow, step, workflow
from streams import Client
from streams.dev import Say


@step
async def measure(region: str) -> str:
    return f"{region}: all green"


@workflow
async def report(region: str) -> str:
    return await measure(region)


@scheduled_workflow(cron="0 6 * * 1-5", timezone="Europe/Paris", args=("eu",))
async def morning_report(region: str) -> str:
    return await measure(region)


async def _fires(client: Client, schedule_id: str, count: int) -> int:
    while (state := await client.schedules.get(schedule_id)) is None or state.fires < count:
        await asyncio.sleep(0.1)
    return state.fires


async def scenario(client: Client, say: Say) -> None:
    """Fire every second, pause, resume, trigger, backfill the last three minutes, delete; then activate the
    schedule declared in code (twice), trigger it, delete it."""
    schedule_id = f"heartbeat-{uuid.uuid4().hex[:6]}"
    state = await client.schedules.create(schedule_id, report, ScheduleSpec(interval="1s"), "eu")
    assert state.next_fire_at is not None
    first = state.next_fire_at
    say(f"created {schedule_id}: every second, first fire at {first} (epoch ms)")
    await asyncio.wait_for(_fires(client, schedule_id, 3), 30)
    ids = [fire_run_id(schedule_id, first + 1000 * k) for k in range(3)]
    results = [await client.result(run_id, timeout=30) for run_id in ids]
    say(f"fired 3 times, run ids derived from the nominal times: {results}")

    paused = await client.schedules.pause(schedule_id, note="maintenance")
    await asyncio.sleep(2)
    state = await client.schedules.get(schedule_id)
    assert state is not None
    say(f"paused: {state.fires - paused.fires} fires in 2 s")
    resumed = await client.schedules.resume(schedule_id)
    say(f"resumed: next fire {resumed.next_fire_at} (re-armed from now, nothing made up)")

    triggered = await client.schedules.trigger(schedule_id)
    say(f"triggered run {triggered}: {await client.result(triggered, timeout=30)}")

    await client.schedules.update(schedule_id, overlap="allow_all")  # backfill fires start at once, together
    minute = int(time.time()) // 60 * 60_000
    backfilled = await client.schedules.backfill(schedule_id, minute - 180_000, minute - 177_000)
    results = [await client.result(run_id, timeout=30) for run_id in backfilled]
    say(f"backfilled {len(backfilled)} fires of 3 minutes ago: {results}")

    await client.schedules.delete(schedule_id)
    say(f"deleted: get_schedule -> {await client.schedules.get(schedule_id)}")

    ids = await client.schedules.activate("examples.schedules")
    created = await client.schedules.get("morning_report")
    again = await client.schedules.activate("examples.schedules")  # as at the next deploy: no command sent
    same = await client.schedules.get("morning_report")
    assert created is not None and same is not None
    unchanged = (same.generation, same.requests) == (created.generation, created.requests)
    say(
        f"@scheduled_workflow: activated {ids}, again {again} (unchanged: {unchanged}); weekdays 06:00 "
        f"Europe/Paris, next fire at {created.next_fire_at} (epoch ms)"
    )
    run_id = await client.schedules.trigger("morning_report")
    say(f"triggered the declared schedule: {await client.result(run_id, timeout=30)}")
    await client.schedules.delete("morning_report")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.schedules", scenario)
