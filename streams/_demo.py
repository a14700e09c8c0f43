"""The main job of ``make demo``: the example workflow end to end on the local servers.

Starts ``kflow processor`` and ``kflow worker`` for ``examples.basic`` as child processes (as they run in
production), starts one ``order`` run with the client, prints its result and its history, stops both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable

from engine import Registry
from streams._client import Client
from streams._config import Settings
from streams._topics import Topics, create_topics

APP = "examples.basic"


async def run_demo(settings: Settings, registry: Registry, say: Callable[[str], None] = print) -> None:
    """Run the example once; raises whatever the run raised."""
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "streams.cli", role, "-A", APP, "--log-level", "WARNING"],
                              env=env) for role in ("processor", "worker")]
    say(f"started kflow processor (pid {procs[0].pid}) and kflow worker (pid {procs[1].pid}) for -A {APP}")
    try:
        async with Client(settings=settings, registry=registry) as client:
            started = time.perf_counter()
            run_id = await client.start("order", "o-1", 9.5)
            say(f"run {run_id}: order('o-1', 9.5) started")
            result = await _result_while_alive(client, run_id, procs)
            say(f"result after {time.perf_counter() - started:.2f} s: {result}")
            say("history:")
            events = await client.get_events(run_id)
            first = events[0].timestamp
            for event in events:
                say(f"  {event.seq:>3}  +{event.timestamp - first:>5} ms  {type(event).__name__:<18} {_detail(event)}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _detail(event: object) -> str:
    keep = ("step_name", "position", "attempt", "kind", "fire_at", "retry_at", "result", "error")
    parts = [f"{name}={getattr(event, name)!r}" for name in keep if getattr(event, name, None) is not None]
    return ", ".join(parts)[:110]


async def _result_while_alive(client: Client, run_id: str, procs: list[subprocess.Popen[bytes]]) -> object:
    """The run's result; fails fast (instead of timing out) when the processor or worker died."""
    waiting = asyncio.ensure_future(client.result(run_id, timeout=120))
    while not waiting.done():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            waiting.cancel()
            raise RuntimeError(f"a kflow process exited early (pid {dead[0].pid}, status {dead[0].returncode})")
        await asyncio.wait([waiting], timeout=0.2)
    return waiting.result()
