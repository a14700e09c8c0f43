"""The supervisor of the long-running services, and its progress checks, with fake services and consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from streams.processors import ProgressWatch, supervise

TP = TopicPartition("p.inbox", 0)


class FakeService:
    """Fails to start ``failing_starts`` times, then runs a loop that ends with ``loop_error`` (if given)."""

    name = "fake"

    def __init__(self, failing_starts: int = 0, loop_error: BaseException | None = None) -> None:
        self.failing_starts, self.loop_error = failing_starts, loop_error
        self.starts = self.stops = 0
        self.unhealthy: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failing_starts:
            raise KafkaConnectionError("broker down")
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        await asyncio.sleep(0.01)
        if self.loop_error is not None:
            raise self.loop_error
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stops += 1
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def loops(self) -> Collection[asyncio.Task[None]]:
        return [] if self._task is None else [self._task]

    async def health(self) -> str | None:
        reason, self.unhealthy = self.unhealthy, None
        return reason


async def run_until(service: FakeService, done: object, timeout: float = 5.0) -> asyncio.Event:
    stopping = asyncio.Event()
    task = asyncio.create_task(supervise(service, stopping, check_every=0.01, backoff=(0.01, 0.02)))
    async with asyncio.timeout(timeout):
        while not done():  # type: ignore[operator]
            await asyncio.sleep(0.005)
    stopping.set()
    await task
    return stopping


async def test_a_start_while_the_broker_is_down_is_retried_until_it_succeeds() -> None:
    service = FakeService(failing_starts=3)
    await run_until(service, lambda: service._task is not None)
    assert service.starts == 4 and service.stops == 4  # each failed start is cleaned up, and the last stop


async def test_an_unhealthy_service_is_rebuilt_and_a_loop_ending_in_a_broker_fault_too() -> None:
    service = FakeService()
    await run_until(service, lambda: service.starts == 1 and service._task is not None)
    service.unhealthy = "its consumer is stuck"

    async def rebuilt() -> None:
        await run_until(service, lambda: service.starts >= 2)

    await rebuilt()
    faulty = FakeService(loop_error=KafkaConnectionError("connection reset"))
    await run_until(faulty, lambda: faulty.starts >= 3)


async def test_a_loop_ending_in_a_bug_is_raised_after_the_service_stopped() -> None:
    service = FakeService(loop_error=ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        await supervise(service, asyncio.Event(), check_every=0.01, backoff=(0.01, 0.02))
    assert service.starts == 1 and service.stops == 1


class FakeConsumer:
    """What ProgressWatch reads of a consumer: membership, assignment, pauses, positions, end offsets."""

    def __init__(self) -> None:
        self.generation, self.position_now, self.end = 1, 10, 10
        self._coordinator = self
        self.assigned: set[TopicPartition] = {TP}
        self.paused_set: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def paused(self) -> set[TopicPartition]:
        return self.paused_set

    async def position(self, tp: TopicPartition) -> int:
        return self.position_now

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end for tp in tps}

    def last_stable_offset(self, tp: TopicPartition) -> int | None:  # known from fetches (read_committed)
        return self.end

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.end


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_loop_that_stops_polling_is_reported() -> None:
    clock, consumer = Clock(), FakeConsumer()
    watch = ProgressWatch(stall_seconds=20, clock=clock)
    clock.now = 19
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]
    clock.now = 21
    assert "has not polled for 21 s" in (await watch.check(consumer, "g") or "")  # type: ignore[arg-type]
    watch.polled()
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]


async def test_a_consumer_outside_its_group_too_long_is_reported() -> None:
    clock, consumer = Clock(), FakeConsumer()
    watch = ProgressWatch(stall_seconds=20, clock=clock)
    consumer.generation = -1  # a rebalance, or a coordinator that never rejoins
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]
    clock.now = 15
    watch.polled()
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]
    clock.now = 25
    watch.polled()
    assert "not been a member of group g for 25 s" in (await watch.check(consumer, "g") or "")  # type: ignore[arg-type]
    consumer.generation = 2
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]


async def test_a_partition_standing_still_behind_its_end_is_reported_unless_paused_or_caught_up() -> None:
    clock, consumer = Clock(), FakeConsumer()
    watch = ProgressWatch(stall_seconds=20, clock=clock)
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]  # learns position 10
    consumer.end = 50  # records arrive, nothing is handled
    clock.now = 25
    watch.polled()
    assert "has not moved past offset 10" in (await watch.check(consumer, "g") or "")  # type: ignore[arg-type]
    assert watch.lag == {0: 40}  # kflow_consumer_lag: records behind the end, per partition
    consumer.paused_set = {TP}  # paused (adopting, or a worker at capacity): standing still is right
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]
    consumer.paused_set = set()
    watch.processed(TP, 50)  # caught up
    clock.now = 60
    watch.polled()
    assert await watch.check(consumer, "g") is None  # type: ignore[arg-type]
