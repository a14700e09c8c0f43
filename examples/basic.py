"""The basics: steps, a retry that succeeds, a durable sleep.

Run it on the embedded default with one command (``make demo`` runs it too):

    python -m examples.basic

or by hand: ``kflow dev up && kflow topics create``, ``kflow processor -A examples.basic &``,
``kflow worker -A examples.basic &``, ``kflow run examples.basic:order o-1 9.5 --history``.
"""

from __future__ import annotations

import time

from engine import RetryableError, sleep, step, workflow
from streams import Client
from streams.dev import Say, history_lines

_reservations_tried: dict[str, int] = {}


@step(max_retries=3, retry_delay="fixed")
async def reserve(order_id: str) -> dict[str, object]:
    """Reserve stock; the warehouse is busy on the first try of each order (in this worker process)."""
    tries = _reservations_tried[order_id] = _reservations_tried.get(order_id, 0) + 1
    if tries == 1:
        raise RetryableError("warehouse busy, try again", retry_after="200ms")
    return {"order_id": order_id, "reserved": True, "tries": tries}


@step(timeout="10s")
async def charge(order_id: str, amount: float) -> dict[str, object]:
    """Charge the customer."""
    return {"order_id": order_id, "charged": round(amount, 2)}


@step
async def notify(order_id: str, message: str) -> str:
    """Tell the customer."""
    return f"{order_id}: {message}"


@workflow(name="order", max_duration="1h")
async def order(order_id: str, amount: float) -> dict[str, object]:
    """Reserve (retried once), wait a second (durably), charge, notify."""
    reservation = await reserve(order_id)
    await sleep("1s")
    receipt = await charge(order_id, amount)
    note = await notify(order_id, "your order is on its way")
    return {"reservation": reservation, "receipt": receipt, "note": note}


async def scenario(client: Client, say: Say) -> None:
    """One order end to end: its result and its history."""
    started = time.perf_counter()
    run_id = await client.start("order", "o-1", 9.5)
    say(f"run {run_id}: order('o-1', 9.5) started")
    result = await client.result(run_id, timeout=120)
    say(f"result after {time.perf_counter() - started:.2f} s: {result}")
    say("history:")
    for line in history_lines(await client.get_events(run_id)):
        say(line)


if __name__ == "__main__":
    from examples._runner import main

    main("examples.basic", scenario)
