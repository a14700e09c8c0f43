"""Running an example end to end on the local servers (``make demo``, ``python -m examples.<name>``).

Starts ``kflow processor`` and ``kflow worker`` for the example's module as child processes (as they run
in production), runs the example's scenario with a client, stops both. A processor or worker that dies
fails the example at once instead of letting it wait. With a metrics port, the processor serves ``/metrics``
on it and the worker on the next port; the demo prints the kflow figures both served before it stops them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable

from engine import Registry
from engine.runtime import HistoryEvent
from streams._settings import Settings
from streams._topics import Topics, create_topics
from streams.client import Client

Say = Callable[[str], None]
Scenario = Callable[[Client, Say], Awaitable[None]]


SHOWN_METRICS = (
    "kflow_runs_started_total",
    "kflow_runs_finished_total",
    "kflow_step_executions_total",
    "kflow_step_failures_total",
    "kflow_step_retries_total",
    "kflow_timer_lateness_seconds_count",
)
"""The metric lines the demo prints from each process's ``/metrics`` (the rest is there too, for ``curl``)."""


async def run_example(
    settings: Settings,
    app: str,
    registry: Registry,
    scenario: Scenario,
    say: Say = print,
    metrics_port: int | None = None,
) -> None:
    """Run ``scenario`` against processor + worker processes for module ``app``; raises what it raised.

    With ``metrics_port``, the processor serves ``/metrics`` on it and the worker on ``metrics_port + 1``.
    """
    await create_topics(
        settings.kafka_target(),
        Topics(settings.topic_prefix),
        settings.partitions,
        replication_factor=settings.replication_factor,
        retention_ms=settings.retention_ms,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    env.pop("KFLOW_METRICS_PORT", None)  # each process gets its own port below (or none): never a shared one
    ports = {} if metrics_port is None else {"processor": metrics_port, "worker": metrics_port + 1}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streams.cli", role, "-A", app, "--log-level", "WARNING"]
            + (["--metrics-port", str(ports[role])] if role in ports else []),
            env=env,
        )
        for role in ("processor", "worker")
    ]
    say(f"started kflow processor (pid {procs[0].pid}) and kflow worker (pid {procs[1].pid}) for -A {app}")
    for role, port in ports.items():
        say(f"{role} metrics: curl http://127.0.0.1:{port}/metrics  (and /healthz, /readyz)")
    try:
        async with Client(settings=settings, registry=registry) as client:
            await _while_alive(scenario(client, say), procs)
        for role, port in ports.items():
            say(f"{role} /metrics (kflow figures of this run; the whole text has more):")
            for line in await asyncio.to_thread(_scrape, port):
                say(f"  {line}")
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


def _scrape(port: int) -> list[str]:
    """The lines of ``SHOWN_METRICS`` the process on ``port`` serves (an unreachable port: one line saying so)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text: str = answer.read().decode()
    except OSError as exc:
        return [f"(not reachable: {exc})"]
    shown = [line for line in text.splitlines() if line.split("{", 1)[0].split(" ", 1)[0] in SHOWN_METRICS]
    return [line for line in shown if float(line.rsplit(" ", 1)[1]) != 0]


def history_lines(events: list[HistoryEvent]) -> list[str]:
    """The history as the demo prints it: seq, time since the start, event type, key fields."""
    first = events[0].timestamp if events else 0
    return [f"  {e.seq:>3}  +{e.timestamp - first:>5} ms  {type(e).__name__:<22} {_detail(e)}" for e in events]


def _detail(event: object) -> str:
    keep = ("step_name", "position", "attempt", "kind", "name", "child_run_id", "retry_at", "result", "error", "reason")
    parts = [f"{name}={getattr(event, name)!r}" for name in keep if getattr(event, name, None) is not None]
    return ", ".join(parts)[:110]
