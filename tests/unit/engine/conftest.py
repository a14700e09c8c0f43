"""Fixtures for the engine unit tests: a fake clock and drivers in both replay modes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from engine import Registry
from engine.runtime import HistoryEvent
from engine.testing import FakeClock, InMemoryDriver

START_MS = 1_700_000_000_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START_MS)


@pytest.fixture(params=[False, True], ids=["cached", "always_replay"])
def always_replay(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def make_driver(clock: FakeClock, always_replay: bool) -> Callable[..., InMemoryDriver]:
    """Build an InMemoryDriver over the given decorated functions, in both replay modes."""

    def make(*items: object) -> InMemoryDriver:
        counter = iter(range(1, 1_000_000))
        return InMemoryDriver(
            Registry(items), clock, always_replay=always_replay, run_ids=lambda: f"run{next(counter):04d}"
        )

    return make


def names(history: Iterable[HistoryEvent]) -> list[str]:
    """Event type names of a history, for compact assertions."""
    return [type(event).__name__ for event in history]


@pytest.fixture
def event_names() -> Callable[[Iterable[HistoryEvent]], list[str]]:
    return names
