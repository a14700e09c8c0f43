"""Workflows and steps the end-to-end and crash tests run (importable as ``-A e2e_workflows``).

Steps that must prove "a completed step never runs again" append one line per execution to the file
named by ``KFLOW_TEST_SIDE_EFFECTS`` (absent: no record is kept).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

from engine import (
    ChildWorkflowFailedError,
    EventLimits,
    FatalError,
    HookExpiredError,
    RetryableError,
    StepContext,
    continue_as_new,
    get_step_context,
    has_step_context,
    hook,
    set_step_context,
    sleep,
    start_child_workflow,
    step,
    workflow,
)


def _record(line: str) -> None:
    path = os.environ.get("KFLOW_TEST_SIDE_EFFECTS")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())


@step
async def add(a: int, b: int) -> int:
    return a + b


@step
async def effect(run_tag: str, index: int) -> int:
    """A side effect counted in the side-effects file: ``done <tag> <index>``."""
    _record(f"done {run_tag} {index}")
    return index


@step(max_retries=5, retry_delay=[0.05, 0.05, 0.05])
async def fail_times(key: str, times: int) -> str:
    """Fails ``times`` times per key (counted in the side-effects file when set, else in memory)."""
    _ATTEMPTS[key] = _ATTEMPTS.get(key, 0) + 1
    if _ATTEMPTS[key] <= times:
        raise RetryableError(f"attempt {_ATTEMPTS[key]} of {key} fails")
    return f"{key} ok after {_ATTEMPTS[key]}"


_ATTEMPTS: dict[str, int] = {}


@step(max_retries=2, retry_delay="fixed")
async def always_fails(key: str) -> None:
    raise ValueError(f"{key} is broken")


@step(max_retries=3)
async def fatal(key: str) -> None:
    raise FatalError(f"{key}: no point retrying")


@step(timeout="300ms", max_retries=0)
async def too_slow() -> None:
    await asyncio.sleep(5)


@step
async def slow_effect(run_tag: str, seconds: float) -> str:
    """Records its start, sleeps (a window to kill the worker in), records its end."""
    _record(f"start {run_tag}")
    await asyncio.sleep(seconds)
    _record(f"end {run_tag}")
    return run_tag


@workflow
async def sum_three(a: int, b: int, c: int) -> int:
    ab = await add(a, b)
    return await add(ab, c)


@workflow
async def retried(key: str, times: int) -> str:
    return await fail_times(key, times)


@workflow
async def exhausted(key: str) -> str:
    try:
        await always_fails(key)
    except ValueError as exc:
        return f"caught: {exc}"
    return "not reached"


@workflow
async def fatal_run(key: str) -> None:
    await fatal(key)


@workflow
async def timeout_run() -> str:
    try:
        await too_slow()
    except Exception as exc:
        return type(exc).__name__
    return "no timeout"


@workflow
async def sleepy(duration: object) -> str:
    await sleep(duration)  # type: ignore[arg-type]
    return "awake"


@workflow
async def sleep_until_soon() -> str:
    await sleep(datetime.now(UTC) + timedelta(milliseconds=300))  # the wall clock: fixed on the first run
    return "awake"


@workflow
async def effects(run_tag: str, count: int, pause: float) -> int:
    """``count`` counted side effects with a durable sleep of ``pause`` seconds after each."""
    total = 0
    for index in range(count):
        total += await effect(run_tag, index)
        if pause:
            await sleep(pause)
    return total


@workflow
async def slow(run_tag: str, seconds: float) -> str:
    return await slow_effect(run_tag, seconds)


@workflow(max_duration="500ms")
async def overdue() -> str:
    await sleep("5s")
    return "finished"


def _now_ms() -> int:
    return int(time.time() * 1000)


@step
async def cleanup(tag: str) -> str:
    _record(f"cleanup {tag}")
    return tag


@workflow
async def cancellable(tag: str) -> str:
    try:
        await sleep("60s")
        return "slept"
    finally:
        await cleanup(tag)


@workflow
async def huge_result(size: int) -> str:
    seed = await add(1, 1)
    return "x" * size + str(seed)


@workflow
async def sleep_timedelta(milliseconds: int) -> str:
    await sleep(timedelta(milliseconds=milliseconds))
    return "awake"


@workflow
async def parent_sum(n: int) -> int:
    """A child awaited directly and one started fire-and-forget, then awaited through its handle."""
    direct = await start_child_workflow(sum_three, n, n, n)
    handle = await start_child_workflow("sum_three", 1, 1, 1, wait_for_completion=False)
    return direct + await handle.result()


@workflow
async def parent_of_failing() -> str:
    try:
        await start_child_workflow(fatal_run, "child")
    except ChildWorkflowFailedError:
        return "child failed"
    return "child succeeded"


@workflow
async def parent_of_sleeper(tag: str) -> str:
    try:
        return await start_child_workflow(cancellable, tag)
    finally:
        await cleanup(f"parent-{tag}")


@workflow
async def approval(order_id: str) -> dict[str, object]:
    decision = await hook("approval", timeout="60s")
    return {"order_id": order_id, "approved": decision["ok"]}  # type: ignore[index]


@workflow
async def approval_expires() -> str:
    try:
        await hook("approval", timeout="300ms")
    except HookExpiredError:
        return "expired"
    return "approved"


class Tenant(StepContext):
    tenant: str


@step
async def whose() -> str:
    if not has_step_context():
        return "nobody"
    return str(get_step_context().tenant)


@workflow(context_class=Tenant)
async def with_context(tenant: str) -> list[str]:
    before = await whose()
    await set_step_context(Tenant(tenant=tenant))
    after = await whose()
    return [before if has_step_context() else "?", after]


@workflow
async def countdown(n: int) -> str:
    if n > 0:
        await add(n, 0)
        continue_as_new(n - 1)
    return "liftoff"


@workflow(event_limits=EventLimits(soft=5, hard=12))
async def too_long(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += await add(i, 0)
    return total


@workflow
async def late_hook(order_id: str) -> dict[str, object]:
    await sleep("3s")  # the payload arrives meanwhile and is kept
    decision = await hook("approval", timeout="60s")
    return {"order_id": order_id, "approved": decision["ok"]}  # type: ignore[index]


@workflow
async def looper(tag: str, hops: int) -> str:
    """Continues as new ``hops`` times, then waits until cancelled (cleanup runs)."""
    if hops > 0:
        continue_as_new(tag, hops - 1)
    try:
        await sleep("1h")
    finally:
        await cleanup(f"looper-{tag}")
    return "woke"


@workflow
async def parent_of_looper(tag: str) -> str:
    return await start_child_workflow(looper, tag, 2)
