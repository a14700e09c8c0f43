"""Workflows the Java client's test starts and reads (``tests/integration/test_java_client.py``)."""

from __future__ import annotations

from engine import continue_as_new, step, workflow


@step
async def greeting(name: str, punctuation: str) -> str:
    return f"Grüß dich, {name}{punctuation}"  # not ASCII: the result crosses as UTF-8 JSON


@workflow
async def greet(name: str, punctuation: str = "!") -> dict[str, object]:
    text = await greeting(name, punctuation)
    return {"greeting": text, "name": name, "length": len(text), "ratio": 2.5, "tags": [None, True]}


@workflow
async def refused(order_id: str) -> None:
    await greeting(order_id, ".")
    raise ValueError(f"order {order_id} refused\nby the bank")  # two lines: the client prints one


@workflow
async def hops(n: int, trail: str = "") -> str:
    if n > 0:
        continue_as_new(n - 1, trail + str(n))  # a chain of runs; the result is the last one's
    return f"landed after {trail}"
