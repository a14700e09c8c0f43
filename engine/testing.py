"""Testing workflow code without Kafka: ``InMemoryDriver`` runs orchestrator, step worker and timers in one
process against a ``FakeClock`` you advance (see the README, "Tests")."""

from __future__ import annotations

from ._clock import FakeClock
from ._testing import InMemoryDriver

__all__ = ["InMemoryDriver", "FakeClock"]
