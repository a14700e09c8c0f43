"""Running an example end to end on the local servers (``make demo``, ``python -m examples.<name>``).

Starts ``kflow processor`` and ``kflow worker`` for the example's module as child processes (as they run
in production), runs the example's scenario with a client, stops both. A processor or worker that dies
fails the example at once instead of letting it wait.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable

from engine import Registry
from engine.runtime import HistoryEvent
from streams._settings import Settings
from streams._topics import Topics, create_topics
from streams.client import Client

Say = Callable[[str], None]
Scenario = Callable[[Client, Say], Awaitable[None]]


async def run_example(settings: Settings, app: str, registry: Registry, scenario: Scenario, say: Say = print) -> None:
    """Run ``scenario`` against processor + worker processes for module ``app``; raises what it raised."""
    await create_topics(
        settings.kafka_target(),
        Topics(settings.topic_prefix),
        settings.partitions,
        replication_factor=settings.replication_factor,
        retention_ms=settings.retention_ms,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-m", "streams.cli", role, "-A", app, "--log-level", "WARNING"], env=env)
        for role in ("processor", "worker")
    ]
    say(f"started kflow processor (pid {procs[0].pid}) and kflow worker (pid {procs[1].pid}) for -A {app}")
    try:
        async with Client(settings=settings, registry=registry) as client:
            await _while_alive(scenario(client, say), procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


async def _while_alive(work: Awaitable[None], procs: list[subprocess.Popen[bytes]]) -> None:
    task = asyncio.ensure_future(work)
    while not task.done():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            task.cancel()
            raise RuntimeError(f"a kflow process exited early (pid {dead[0].pid}, status {dead[0].returncode})")
        await asyncio.wait([task], timeout=0.2)
    task.result()


def history_lines(events: list[HistoryEvent]) -> list[str]:
    """The history as the demo prints it: seq, time since the start, event type, key fields."""
    first = events[0].timestamp if events else 0
    return [f"  {e.seq:>3}  +{e.timestamp - first:>5} ms  {type(e).__name__:<22} {_detail(e)}" for e in events]


def _detail(event: object) -> str:
    keep = ("step_name", "position", "attempt", "kind", "name", "child_run_id", "retry_at", "result", "error", "reason")
    parts = [f"{name}={getattr(event, name)!r}" for name in keep if getattr(event, name, None) is not None]
    return ", ".join(parts)[:110]
