"""Workflows of local steps for test_local_steps.py: each attempt appends ``<pid> <run id> <i>`` to the file
``KFLOW_TEST_SIDE_EFFECTS`` names (fsync'd) before it returns; the attempt of step ``KFLOW_TEST_KILL_AT`` kills
its own process with SIGKILL the first time (the file ``<side effects>.killed`` remembers it)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from engine import get_step_info, sleep, step, workflow


@step(local=True)
async def mark(i: int) -> int:
    effects = Path(os.environ["KFLOW_TEST_SIDE_EFFECTS"])
    with effects.open("a") as out:
        out.write(f"{os.getpid()} {get_step_info().run_id} {i}\n")
        out.flush()
        os.fsync(out.fileno())
    killed = effects.with_suffix(".killed")
    if str(i) == os.environ.get("KFLOW_TEST_KILL_AT") and not killed.exists():
        killed.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: this batch's local results were never committed
    return i


@workflow
async def local_chain(n: int, pause_before: int) -> int:
    """``n`` local steps, with a durable ``sleep`` before step ``pause_before``: two batches."""
    total = 0
    for i in range(n):
        if i == pause_before:
            await sleep("200ms")
        total += await mark(i)
    return total
