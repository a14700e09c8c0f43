"""``/healthz`` and ``/readyz``: the two decisions, and what ``supervise`` tells them (fake services, no servers)."""

from __future__ import annotations

import asyncio

from test_supervise import FakeService, run_until

from streams.processors import HEALTH_BOARD as BOARD
from streams.processors import ServiceHealth, liveness, loop_answers, readiness


def test_live_while_the_loop_answers_and_every_running_service_was_checked_lately() -> None:
    services = [ServiceHealth("orchestrator", "running", 100.0, None), ServiceHealth("worker", "reconnecting", 0.0)]
    ok, body = liveness(services, now=110.0, loop_ok=True, stall_seconds=30)
    assert ok and body["status"] == "ok"  # reconnecting (Kafka down) is not a reason to restart the process


def test_not_live_when_the_loop_does_not_answer_or_a_watch_stalled() -> None:
    running = ServiceHealth("orchestrator", "running", 100.0, None)
    ok, body = liveness([running], now=101.0, loop_ok=False, stall_seconds=30)
    assert not ok and body["problems"] == ["the event loop does not answer"]
    ok, body = liveness([running], now=200.0, loop_ok=True, stall_seconds=30)
    assert not ok and "orchestrator: no completed check for 100 s" in body["problems"]


def test_ready_only_when_every_service_runs_and_says_it_is_ready() -> None:
    ready = ServiceHealth("worker", "running", 0.0, None)
    assert readiness([ready]) == (True, {"status": "ready", "problems": [], "services": {"worker": "running"}})
    adopting = ServiceHealth("orchestrator", "running", 0.0, "inbox partitions [1] not adopted yet")
    ok, body = readiness([ready, adopting])
    assert not ok and body["problems"] == ["orchestrator: inbox partitions [1] not adopted yet"]
    ok, body = readiness([ServiceHealth("materializer", "reconnecting", 0.0, "cannot start (KafkaConnectionError)")])
    assert not ok and body["status"] == "not ready"
    assert readiness([]) == (False, {"status": "not ready", "problems": ["no service started yet"], "services": {}})


class ReadinessService(FakeService):
    name = "fake-ready"

    def __init__(self) -> None:
        super().__init__(failing_starts=1)
        self.waiting: str | None = "partition 0 not adopted yet"

    async def readiness(self) -> str | None:
        return self.waiting


async def test_supervise_reports_phase_checks_and_readiness_on_the_board() -> None:
    service = ReadinessService()
    entry = BOARD.entry(service, service.name)
    await run_until(service, lambda: entry.phase == "running" and entry.reason == service.waiting)
    assert service.starts == 2  # the failed start was reported as reconnecting first
    service.waiting = None
    await run_until(service, lambda: entry.phase == "running" and entry.reason is None)
    assert entry.phase == "stopped"  # told to stop
    del BOARD.services[id(service)]


async def test_the_loop_probe_answers_from_another_thread() -> None:
    assert await asyncio.to_thread(loop_answers, asyncio.get_running_loop(), 5.0)
    assert not loop_answers(None)
