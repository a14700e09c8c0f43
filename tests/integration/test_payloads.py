"""Typed payloads end to end on the real broker: values that plain JSON cannot carry (datetimes, Decimals, UUIDs,
dataclasses, Enum members, tuples, sets, bytes, NaN) come back from ``Client.result`` exactly, through steps,
arguments, a child run and a hook; values no JSON codec carries fail their step or run at once, never a dead
letter; the materializer stores every event of such runs (classes it does not know kept as they were written)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import math
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

import payload_workflows as pw
from engine import Registry
from engine.runtime import HookReceived, StepCompleted
from schemas import PayloadError
from storage import CassandraConnection, RunRow, RunStore, StorageError
from streams import HistoryMaterializer, Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import eventually

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class App:
    settings: Settings
    client: Client


@pytest.fixture(scope="module")
async def app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    """Orchestrator, timer processor, worker and materializer in this process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-payloads", keyspace=f"{settings.keyspace}_payloads")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("payload_workflows")
    services = [
        Orchestrator(own, registry),
        TimerProcessor(own, state_dir=Path(tmp_path_factory.mktemp("timers"))),
        StepWorker(own, registry, concurrency=8),
        HistoryMaterializer(own),  # no registry: it keeps the workflow module's classes as it read them
    ]
    for service in services:
        await service.start()
    async with Client(settings=own, registry=registry) as client:
        yield App(own, client)
    for service in reversed(services):
        await service.stop()


async def test_typed_values_come_back_exactly(app: App) -> None:
    number = uuid.UUID("0c64a7fc-d3b7-486d-b08e-4b72457f58a9")
    issued = datetime.datetime(2024, 5, 1, 9, 30, 0, 250, tzinfo=datetime.timezone(datetime.timedelta(hours=-4)))
    tags = frozenset({"eu", "b2b"})
    run_id = await app.client.start("bill", number, Decimal("19.90"), issued, tags)
    await eventually(lambda: _waits_on_hook(app, run_id), what="the run to wait on its hook")
    approval = {"by": "ada", "at": datetime.date(2024, 5, 2), "ids": (1, 2)}
    assert await app.client.resume_hook(f"{run_id}:approval", approval) == "delivered"

    result = await app.client.result(run_id, timeout=60)

    assert isinstance(result, tuple) and len(result) == 6
    status, invoice, audited, checked, received, extra = result
    assert status is pw.Status.PAID
    assert type(invoice) is pw.Invoice
    assert invoice == pw.Invoice(
        number, Decimal("19.90"), issued, datetime.date(2024, 5, 31), (("base", Decimal("19.90")),)
    )
    assert type(invoice.total) is Decimal and str(invoice.total) == "19.90"
    assert invoice.issued.utcoffset() == datetime.timedelta(hours=-4) and invoice.issued.microsecond == 250
    assert type(invoice.lines) is tuple and type(invoice.lines[0]) is tuple
    assert audited == datetime.datetime(2024, 5, 1, 12, 30, 15, 123456) and audited.tzinfo is None
    assert type(checked) is Decimal and checked == Decimal("19.90")
    assert received == approval and type(received["ids"]) is tuple and type(received["at"]) is datetime.date
    assert set(extra) == {("tags", 1), b"raw"} and extra[("tags", 1)] == tags and type(extra[("tags", 1)]) is frozenset
    assert math.isnan(extra[b"raw"])

    events = await app.client.get_events(run_id)
    step_results = [e.result for e in events if isinstance(e, StepCompleted)]
    assert type(step_results[0]) is pw.Invoice and type(step_results[1]) is datetime.datetime
    assert [e.payload for e in events if isinstance(e, HookReceived)] == [approval]
    conn = await asyncio.to_thread(CassandraConnection, app.settings.cassandra_target())
    try:
        row = await eventually(
            lambda: _finished_row(conn, app.settings.keyspace, run_id), timeout=60, what="the run's row in Cassandra"
        )
    finally:
        await asyncio.to_thread(conn.close)
    # stored as the payload's JSON: the workflow module's classes are tags (the materializer does not know them)
    assert row.result is not None
    assert '{"$kflow":"enum","class":"payload_workflows:Status","name":"PAID"}' in row.result
    assert '"$kflow":"dataclass","class":"payload_workflows:Invoice"' in row.result


async def test_a_client_reads_a_class_only_if_it_allows_it(app: App) -> None:
    issued = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    run_id = await app.client.start("invoice_of", uuid.uuid4(), Decimal("1.00"), issued)
    assert type(await app.client.result(run_id, timeout=60)) is pw.Invoice  # its registry allows the module
    async with Client(settings=app.settings) as bare:  # no registry, and Invoice is not @payload_type
        with pytest.raises(PayloadError, match=r"class payload_workflows:Invoice \(dataclass\), which is not allowed"):
            await bare.result(run_id, timeout=60)


async def test_a_step_result_no_codec_carries_fails_that_step_once(app: App) -> None:
    run_id = await app.client.start("bad_step_result")
    result = await app.client.result(run_id, timeout=60)
    assert isinstance(result, str) and result.startswith("PayloadError: the result of step 'opaque' cannot be ")
    assert '$.result["items"][2]: object cannot be encoded' in result
    failed = [e for e in await app.client.get_events(run_id) if type(e).__name__ == "StepFailed"]
    assert len(failed) == 1 and failed[0].retry_at is None  # type: ignore[attr-defined]  # not retried


async def test_a_workflow_result_no_codec_carries_fails_the_run_at_once(app: App) -> None:
    run_id = await app.client.start("bad_result")
    with pytest.raises(PayloadError, match=r"^\$\.result\[1\]: function cannot be encoded"):
        await app.client.result(run_id, timeout=60)


async def _waits_on_hook(app: App, run_id: str) -> bool:
    return any(type(e).__name__ == "HookCreated" for e in await app.client.get_events(run_id))


def _finished_row(conn: CassandraConnection, keyspace: str, run_id: str) -> RunRow | None:
    try:
        row = RunStore(conn, keyspace).get_run(run_id)
    except StorageError:  # the materializer is still creating the keyspace
        return None
    return row if row is not None and row.status == "completed" else None
