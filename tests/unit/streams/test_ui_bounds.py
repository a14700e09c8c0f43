"""What one UI request may cost: dead letters read with a look-back and a record cap, a run page without history
refreshed slowly, the schedules read once for concurrent and partial requests; run ids quoted in paths."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition

import streams.ops._dlq as dlq
import streams.ui._context as context_module
import streams.ui._pages_run as _pages_run
from engine.runtime import CallArgs, WorkflowStarted
from streams import Settings
from streams.ops import DlqAddress, DlqContents
from streams.ui import StatsCollector, UiContext, build_app

DLQ_LOOK_BACK_MS = context_module.DLQ_LOOK_BACK_MS
DLQ_MAX_RECORDS = context_module.DLQ_MAX_RECORDS


class StandIn:
    """The client parts these pages call: no history, and schedules read slowly (counted)."""

    def __init__(self) -> None:
        self.reads = 0
        self.schedules = SimpleNamespace(list=self._list)

    async def _list(self) -> list[Any]:
        self.reads += 1
        await asyncio.sleep(0.05)
        return []

    async def get_events(self, run_id: str) -> list[Any]:
        return []


@pytest.fixture
async def ui(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[TestClient[Any, Any], StandIn, list[dict[str, Any]]]]:
    asked: list[dict[str, Any]] = []

    async def read_dead_letters(settings: Settings, **kwargs: Any) -> DlqContents:
        asked.append(kwargs)
        return DlqContents([], 1, capped=True)

    monkeypatch.setattr(context_module, "read_dead_letters", read_dead_letters)
    stand_in = StandIn()
    context = UiContext(Settings(), stand_in, StatsCollector(Settings()))  # type: ignore[arg-type]
    async with TestClient(TestServer(build_app(context))) as client:
        yield client, stand_in, asked


async def test_dead_letters_are_read_at_most_7_days_back_and_capped(ui: Any) -> None:
    client, _, asked = ui
    reply = await (await client.get("/api/dlq", params={"since": "3650d"})).json()
    assert asked[-1]["max_records"] == DLQ_MAX_RECORDS
    assert asked[-1]["since_ms"] == reply["since"] and reply["capped"] is True
    assert abs(reply["since"] - (time.time() * 1000 - DLQ_LOOK_BACK_MS)) < 60_000
    page = await (await client.get("/dlq", params={"since": "3650d"})).text()
    assert "the UI looks back 7 days at most" in page and f"{DLQ_MAX_RECORDS:,} records" in page


async def test_a_run_without_history_refreshes_every_30_s_and_quotes_its_id(
    ui: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, asked = ui
    text = await (await client.get("/runs/a%3Fb%23c%2Fd")).text()
    assert 'data-every="30000"' in text and 'data-live="/runs/a%3Fb%23c%2Fd?partial=1"' in text
    assert asked and asked[-1]["max_records"] == DLQ_MAX_RECORDS
    assert "/api/runs/a%2Fb%3Fc/cancel" in _pages_run._cancel_form("a/b?c")
    monkeypatch.setattr(_pages_run, "MAX_EVENTS_SHOWN", 1)
    events = [
        WorkflowStarted(run_id="a/b", seq=n, timestamp=0, workflow_name="w", args=CallArgs((), {})) for n in (1, 2)
    ]
    assert "/api/runs/a%2Fb/events" in _pages_run._history(events, "a/b")


async def test_schedules_are_read_once_for_concurrent_and_partial_requests(ui: Any) -> None:
    client, stand_in, _ = ui
    replies = await asyncio.gather(*(client.get("/schedules", params={"partial": "1"}) for _ in range(5)))
    assert all(reply.status == 200 for reply in replies)
    await client.get("/schedules", params={"partial": "1"})
    await client.get("/api/schedules")
    assert stand_in.reads == 1


async def test_a_dlq_read_stops_at_its_record_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    read_from: list[int | None] = []
    yielded = 0

    async def topic_partitions(target: Any, topic: str) -> int:
        return 2

    async def offsets_at(
        target: Any, tps: list[TopicPartition], since_ms: int
    ) -> tuple[dict[Any, int], dict[Any, int]]:
        return dict.fromkeys(tps, 100), dict.fromkeys(tps, 50_000)

    async def read_partition(target: Any, tp: TopicPartition, start: int | None) -> AsyncIterator[Any]:
        nonlocal yielded
        read_from.append(start)
        for offset in range(start or 0, 50_000):
            yielded += 1
            yield SimpleNamespace(offset=offset, value=b"not a record")

    monkeypatch.setattr(dlq, "topic_partitions", topic_partitions)
    monkeypatch.setattr(dlq, "_offsets_at", offsets_at)
    monkeypatch.setattr(dlq, "read_partition", read_partition)
    contents = await dlq.read_dead_letters(Settings(), since_ms=0, max_records=1000)
    assert contents.capped and read_from == [49_500, 49_500] and contents.unreadable == 1000  # the newest 500 each
    yielded = 0
    contents = await dlq.read_dead_letters(Settings(), only=DlqAddress(1, 7), max_records=1000)
    assert contents.capped and read_from[-1] == 7 and yielded <= 1001
