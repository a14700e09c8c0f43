"""The client against the real broker: what it sends to the inbox, and what result() makes of completions."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import engine
from engine import runtime
from engine.runtime import CallArgs, CancelWorkflow, ErrorInfo, ResumeHook, RunFinished, StartWorkflow
from schemas import RecordCodec
from streams import Client, Settings, Topics, partition_for
from support import eventually

pytestmark = pytest.mark.integration

RECORDS = RecordCodec()


@engine.workflow(name="checkout-it")
async def checkout(order_id: str, amount: float) -> dict[str, object]:
    """Only its name matters here: the client sends starts, nothing runs it."""
    return {"order": order_id, "amount": amount}


async def _inbox_records(settings: Settings, run_id: str, count: int, timeout: float = 20) -> list[tuple[int, object]]:
    """(partition, decoded record) of the first ``count`` inbox records keyed by ``run_id``."""
    topic = Topics(settings.topic_prefix).inbox
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        await consumer.seek_to_beginning()
        found: list[tuple[int, object]] = []

        async def enough() -> bool:
            if len(found) >= count:
                return True
            for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                found.extend((tp.partition, RECORDS.decode(m.value)) for m in messages if m.key == run_id.encode())
            return False

        await eventually(
            enough, timeout=timeout, interval=0, what=lambda: f"{count} inbox records for {run_id}; {len(found)} so far"
        )
        return found
    finally:
        await consumer.stop()


async def _finish(settings: Settings, *records: RunFinished) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                Topics(settings.topic_prefix).completions, RECORDS.encode(record), key=record.run_id.encode()
            )
    finally:
        await producer.stop()


def _finished(run_id: str, status: str, **fields: object) -> RunFinished:
    now = int(time.time() * 1000)
    return RunFinished(
        run_id=run_id, workflow_name="checkout-it", status=status, started_at=now - 5, finished_at=now, **fields
    )  # type: ignore[arg-type]


async def test_start_sends_a_start_workflow_keyed_by_the_run_id(settings: Settings) -> None:
    async with Client(settings=settings) as client:
        run_id = await client.start(checkout, "o-1", 9.5)
        by_name = await client.start("checkout-it", "o-2", amount=3.0)
    assert run_id != by_name and len(run_id) == 32
    [(partition, record)] = await _inbox_records(settings, run_id, 1)
    assert partition == partition_for(run_id.encode(), settings.partitions)
    assert isinstance(record, StartWorkflow)
    assert (record.run_id, record.workflow_name, record.args) == (run_id, "checkout-it", CallArgs(("o-1", 9.5), {}))
    assert record.idempotency_key is None
    [(_, second)] = await _inbox_records(settings, by_name, 1)
    assert isinstance(second, StartWorkflow) and second.args == CallArgs(("o-2",), {"amount": 3.0})


async def test_an_idempotency_key_names_one_run(settings: Settings) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    async with Client(settings=settings) as client:
        first = await client.start("checkout-it", "o-1", 1.0, idempotency_key=key)
        second = await client.start(checkout, "o-1", 1.0, idempotency_key=key)
        other_workflow = await client.start("refund-it", "o-1", idempotency_key=key)
    assert first == second != other_workflow
    starts = await _inbox_records(settings, first, 2)
    assert [r.idempotency_key for _, r in starts if isinstance(r, StartWorkflow)] == [key, key]


async def test_cancel_and_resume_hook_go_to_the_runs_inbox_partition(settings: Settings) -> None:
    run_id = uuid.uuid4().hex
    async with Client(settings=settings) as client:
        await client.cancel(run_id, reason="customer asked")
        await client.resume_hook(f"{run_id}:approval", {"ok": True}, wait=False)  # no processor answers here
    (p1, cancel), (p2, resume) = await _inbox_records(settings, run_id, 2)
    assert p1 == p2 == partition_for(run_id.encode(), settings.partitions)
    assert isinstance(cancel, CancelWorkflow) and cancel.reason == "customer asked"
    assert isinstance(resume, ResumeHook) and (resume.token, resume.payload) == (f"{run_id}:approval", {"ok": True})


async def test_result_returns_or_raises_by_the_runs_status(settings: Settings) -> None:
    ok, bad, gone = (uuid.uuid4().hex for _ in range(3))
    async with Client(settings=settings) as client:
        waiting = asyncio.create_task(client.result(ok, timeout=20))  # waits before the run finishes
        await _finish(
            settings,
            _finished(ok, "completed", result={"total": 12.5}),
            _finished(
                bad, "failed", error=ErrorInfo(type="builtins.ValueError", message="bad amount", retryable=False)
            ),
            _finished(gone, "cancelled"),
        )
        assert await waiting == {"total": 12.5}
        assert await client.result(ok, timeout=5) == {"total": 12.5}  # remembered
        with pytest.raises(ValueError, match="bad amount"):
            await client.result(bad, timeout=20)
        with pytest.raises(engine.CancellationError):
            await client.result(gone, timeout=20)


async def test_result_follows_a_continue_as_new_chain(settings: Settings) -> None:
    async with Client(settings=settings) as client:
        first = await client.start("checkout-it", "o-1", 1.0)
        second, last = uuid.uuid4().hex, uuid.uuid4().hex
        await _finish(
            settings,
            _finished(last, "completed", result="end of chain"),
            _finished(first, "continued_as_new", next_run_id=second),
            _finished(second, "continued_as_new", next_run_id=last),
        )
        assert await client.result(first, timeout=20) == "end of chain"


async def test_result_of_an_unknown_run_times_out(settings: Settings) -> None:
    async with Client(settings=settings) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="did not finish within the timeout"):
            await client.result(uuid.uuid4().hex, timeout=1.0)
        assert time.monotonic() - started < 10


async def test_result_of_a_run_finished_before_the_client_existed(settings: Settings) -> None:
    early, failed = uuid.uuid4().hex, uuid.uuid4().hex
    await _finish(
        settings,
        _finished(early, "completed", result=[1, 2, 3]),
        _finished(failed, "failed", error=ErrorInfo(type="engine.FatalError", message="declined", retryable=False)),
    )
    async with Client(settings=settings) as client:  # positioned after both records: only a scan finds them
        assert await client.result(early, timeout=20) == [1, 2, 3]
        with pytest.raises(engine.FatalError, match="declined"):
            await client.result(failed, timeout=20)


async def test_get_events_and_get_run_read_the_runs_history(settings: Settings) -> None:
    run_id = uuid.uuid4().hex
    events = [
        runtime.WorkflowStarted(
            run_id=run_id, seq=1, timestamp=1000, workflow_name="checkout-it", args=CallArgs(("o-1",), {})
        ),
        runtime.StepScheduled(
            run_id=run_id,
            seq=2,
            timestamp=1001,
            position=0,
            step_name="charge",
            args=CallArgs(("o-1",), {}),
            attempt=1,
            max_retries=3,
        ),
        runtime.WorkflowCompleted(run_id=run_id, seq=3, timestamp=1009, result="paid"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for event in [events[0], events[1], events[1], events[2]]:  # one duplicate write
            await producer.send_and_wait(
                Topics(settings.topic_prefix).history, RECORDS.encode(event), key=run_id.encode()
            )
    finally:
        await producer.stop()
    async with Client(settings=settings) as client:
        assert await client.get_events(run_id) == events
        run = await client.get_run(run_id)
        assert await client.get_run(uuid.uuid4().hex) is None
    assert run is not None
    assert (run.workflow_name, run.status, run.result, run.started_at, run.finished_at) == (
        "checkout-it",
        "completed",
        "paid",
        1000,
        1009,
    )
