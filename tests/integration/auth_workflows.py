"""Workflows of test_record_auth.py and test_prefix_isolation.py."""

from __future__ import annotations

import asyncio

from engine import step, workflow


@step
async def slow_echo(value: str, seconds: float) -> str:
    await asyncio.sleep(seconds)  # long enough for a test to slip a forged record in ahead of the real one
    return value


@workflow(max_duration="1h")
async def guarded(value: str) -> str:
    return await slow_echo(value, 3.0)


@workflow
async def keyed_order(order_id: str) -> str:
    return await slow_echo(f"order {order_id} done", 0.0)
