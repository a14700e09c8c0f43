"""The materializer's linger: records that arrive soon after a batch's first ones join that batch (no server)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from streams import Settings
from streams.processors import HistoryMaterializer

TP0, TP1 = TopicPartition("h", 0), TopicPartition("h", 1)


class _Consumer:
    """Hands out the prepared polls one by one (then nothing, after waiting out the timeout)."""

    def __init__(self, polls: list[dict[TopicPartition, list[Any]]]) -> None:
        self.polls = polls
        self.asked: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.asked.append((timeout_ms, max_records))
        if self.polls:
            return self.polls.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}


def _records(partition: int, offsets: range) -> list[Any]:
    return [SimpleNamespace(partition=partition, offset=o) for o in offsets]


def _materializer(consumer: _Consumer, **options: Any) -> HistoryMaterializer:
    materializer = HistoryMaterializer(Settings(), **options)
    materializer._consumer = consumer  # type: ignore[assignment]
    return materializer


async def test_what_arrives_within_the_linger_joins_the_batch_in_order() -> None:
    consumer = _Consumer([{TP0: _records(0, range(3, 5)), TP1: _records(1, range(2))}, {TP0: _records(0, range(5, 6))}])
    batches = {TP0: _records(0, range(3))}
    await _materializer(consumer, linger=0.05)._fill(batches)
    assert [r.offset for r in batches[TP0]] == [0, 1, 2, 3, 4, 5] and [r.offset for r in batches[TP1]] == [0, 1]
    assert len(consumer.asked) >= 3 and not consumer.polls  # two polls with records, then the rest of the linger


async def test_a_full_batch_does_not_wait_and_polls_ask_only_for_what_fits() -> None:
    consumer = _Consumer([{TP0: _records(0, range(3, 8))}])
    batches = {TP0: _records(0, range(3))}
    await _materializer(consumer, linger=5.0, batch_size=8)._fill(batches)  # would wait 5 s if it did not stop
    assert [r.offset for r in batches[TP0]] == list(range(8))
    assert [asked for _, asked in consumer.asked] == [5]


async def test_no_linger_adds_nothing() -> None:
    consumer = _Consumer([{TP0: _records(0, range(3, 5))}])
    batches = {TP0: _records(0, range(3))}
    await _materializer(consumer, linger=0.0)._fill(batches)
    assert len(batches[TP0]) == 3 and consumer.asked == []
