"""``/healthz`` and ``/readyz``: what ``supervise`` knows about each service, and the two decisions.

``supervise`` records each service's phase (``starting``, ``running``, ``reconnecting``), when its watch last
completed a check and the service's readiness (``Service.readiness``, optional). The HTTP thread decides from
that snapshot plus a probe of the event loop (``loop_answers``):

- live (``/healthz``): the event loop answers, and no running service's watch has gone ``stall_seconds``
  without completing a check (a loop stuck there is what a restart fixes; a broker that is down is not);
- ready (``/readyz``): every service is ``running`` (Kafka answered its start and its last check) and says it is
  ready (the orchestrator: its assigned partitions adopted; the materializer: Cassandra answering).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

STALL_SECONDS = 30.0
"""How long a running service's watch may go without a completed check before the process is not live."""


@dataclass(slots=True)
class ServiceHealth:
    """What ``supervise`` last knew about one service (monotonic seconds)."""

    name: str
    phase: str = "starting"
    checked_at: float = field(default_factory=time.monotonic)
    reason: str | None = "starting"  # why it is not ready (None: ready)


@dataclass(slots=True)
class HealthBoard:
    """The services of this process, as ``supervise`` reports them."""

    services: dict[int, ServiceHealth] = field(default_factory=dict)

    def entry(self, service: object, name: str) -> ServiceHealth:
        """The entry of ``service`` (created on first use)."""
        return self.services.setdefault(id(service), ServiceHealth(name))

    def snapshot(self) -> list[ServiceHealth]:
        """A copy of every entry."""
        return [ServiceHealth(s.name, s.phase, s.checked_at, s.reason) for s in list(self.services.values())]


BOARD = HealthBoard()
"""This process's board (``supervise`` writes it, the HTTP server reads it)."""


def liveness(
    services: list[ServiceHealth], now: float, loop_ok: bool, stall_seconds: float = STALL_SECONDS
) -> tuple[bool, dict[str, Any]]:
    """Whether the process is live, and the JSON body saying why."""
    problems = [] if loop_ok else ["the event loop does not answer"]
    for s in services:
        if s.phase == "running" and now - s.checked_at > stall_seconds:
            problems.append(f"{s.name}: no completed check for {now - s.checked_at:.0f} s")
    body: dict[str, Any] = {"status": "ok" if not problems else "stalled", "problems": problems}
    body["services"] = {s.name: s.phase for s in services}
    return not problems, body


def readiness(services: list[ServiceHealth]) -> tuple[bool, dict[str, Any]]:
    """Whether the process is ready for work, and the JSON body saying why."""
    problems = [f"{s.name}: {s.reason}" for s in services if s.phase != "running" or s.reason is not None]
    if not services:
        problems.append("no service started yet")
    body: dict[str, Any] = {"status": "ready" if not problems else "not ready", "problems": problems}
    body["services"] = {s.name: s.phase for s in services}
    return not problems, body


def loop_answers(loop: asyncio.AbstractEventLoop | None, timeout: float = 5.0) -> bool:
    """Whether ``loop`` runs a callback within ``timeout`` seconds (called from another thread)."""
    if loop is None or loop.is_closed():
        return False
    answered = threading.Event()
    try:
        loop.call_soon_threadsafe(answered.set)
    except RuntimeError:
        return False
    return answered.wait(timeout)
