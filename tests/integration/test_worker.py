"""The step worker against the real broker: tasks in, step results (or dead letters) out, at-least-once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

import worker_steps
from engine import Registry
from engine.runtime import CallArgs, ExecuteStep, StepResult
from schemas import Codec, RecordCodec
from streams import Settings, Topics, create_topics
from streams.processors import StepWorker
from support import eventually

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
RECORDS = RecordCodec()


def _task(
    step_name: str,
    *args: object,
    timeout_ms: int | None = None,
    run_id: str | None = None,
    position: int = 0,
    attempt: int = 1,
) -> ExecuteStep:
    return ExecuteStep(
        run_id=run_id or uuid.uuid4().hex,
        workflow_name="wf",
        position=position,
        attempt=attempt,
        step_name=step_name,
        args=CallArgs(tuple(args), {}),
        timeout_ms=timeout_ms,
        scheduled_at=int(time.time() * 1000),
    )


class TopicReader:
    """Reads a whole topic from the beginning (no group) and keeps every record seen, for polling."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic, self.partitions = topic, settings.partitions
        bootstrap = settings.bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        self.seen: list[tuple[bytes | None, bytes, int, int]] = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        self.consumer.assign([TopicPartition(self.topic, p) for p in range(self.partitions)])
        await self.consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(
        self, matches: Callable[[bytes | None, bytes], bool], count: int = 1, timeout: float = 30.0
    ) -> list[bytes]:
        """Values of the first ``count`` records that match, polling until the deadline."""

        async def enough() -> list[bytes] | None:
            found = [value for key, value, _, _ in self.seen if matches(key, value)]
            if len(found) >= count:
                return found[:count]
            batch = await self.consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                self.seen.extend((m.key, m.value, tp.partition, m.offset) for m in messages)
            return None

        return await eventually(enough, timeout=timeout, interval=0, what=f"{count} matching records on {self.topic}")


async def _results(settings: Settings, run_ids: list[str], timeout: float = 30.0) -> dict[str, StepResult]:
    wanted = {rid.encode() for rid in run_ids}
    async with TopicReader(settings, Topics(settings.topic_prefix).inbox) as reader:
        values = await reader.wait_for(lambda key, _: key in wanted, len(run_ids), timeout)
    decoded = [RECORDS.decode(value) for value in values]
    assert all(isinstance(r, StepResult) for r in decoded)
    return {r.run_id: r for r in decoded if isinstance(r, StepResult)}


async def _send(settings: Settings, topic: str, items: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, value, key=key) for key, value in items]
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in sent]


async def _send_tasks(settings: Settings, tasks: list[ExecuteStep]) -> list[tuple[int, int]]:
    return await _send(
        settings, Topics(settings.topic_prefix).tasks, [(t.run_id.encode(), RECORDS.encode(t)) for t in tasks]
    )


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[StepWorker]:
    """One in-process worker on the session's topics, shared by the tests that need no crash."""
    running = StepWorker(settings, Registry.from_module("worker_steps"), concurrency=4, worker_id="it-worker")
    await running.start()
    yield running
    await running.stop()


async def _committed(settings: Settings, tp: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}.workers")
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return -1 if meta is None else int(meta.offset)


async def test_successful_step_reports_its_result_keyed_by_run_id_and_commits(
    settings: Settings, worker: StepWorker
) -> None:
    task = _task("add", 2, 3, position=7, attempt=2)
    [(partition, offset)] = await _send_tasks(settings, [task])
    result = (await _results(settings, [task.run_id]))[task.run_id]
    assert (result.ok, result.result, result.position, result.attempt) == (True, 5, 7, 2)
    assert result.worker == "it-worker" and result.error is None
    assert result.started_at <= result.finished_at
    tp = TopicPartition(Topics(settings.topic_prefix).tasks, partition)

    async def committed() -> bool:
        return await _committed(settings, tp) > offset

    await eventually(committed, timeout=10, interval=0.1, what="the acknowledged task's offset to be committed")


async def test_failing_steps_report_error_info_with_retryability(settings: Settings, worker: StepWorker) -> None:
    boom, fatal, unknown = _task("explode", "boom"), _task("refuse", "no way"), _task("no_such_step")
    await _send_tasks(settings, [boom, fatal, unknown])
    results = await _results(settings, [boom.run_id, fatal.run_id, unknown.run_id])
    err = results[boom.run_id].error
    assert not results[boom.run_id].ok and err is not None
    assert (err.type, err.message, err.retryable) == ("builtins.ValueError", "boom", True)
    assert err.traceback is not None and "ValueError: boom" in err.traceback
    fatal_err = results[fatal.run_id].error
    assert fatal_err is not None and (fatal_err.type, fatal_err.retryable) == ("engine.FatalError", False)
    unknown_err = results[unknown.run_id].error
    assert unknown_err is not None and unknown_err.type == "engine.UnknownStepError"
    assert unknown_err.retryable is False
    assert worker.stats.steps_failed >= 3


async def test_step_timeout_is_enforced_and_reported(settings: Settings, worker: StepWorker) -> None:
    task = _task("dawdle", 30, timeout_ms=300)
    await _send_tasks(settings, [task])
    result = (await _results(settings, [task.run_id], timeout=20))[task.run_id]
    assert not result.ok and result.error is not None
    assert result.error.type == "engine.StepTimeoutError" and result.error.retryable is True
    assert result.finished_at - result.started_at < 5000


async def test_unencodable_result_becomes_a_non_retryable_failure(settings: Settings, worker: StepWorker) -> None:
    task = _task("make_opaque")
    await _send_tasks(settings, [task])
    result = (await _results(settings, [task.run_id]))[task.run_id]
    assert not result.ok and result.error is not None
    assert result.error.type == "schemas._errors.PayloadError" and result.error.retryable is False
    assert '$.result["items"][2]: object cannot be encoded' in result.error.message
    assert "cloudpickle" in result.error.message


async def test_malformed_tasks_go_to_the_dlq_and_the_partition_keeps_flowing(
    settings: Settings, worker: StepWorker
) -> None:
    run_id = uuid.uuid4().hex
    key = run_id.encode()
    cancel = Codec().encode("CancelWorkflow", {"run_id": run_id, "reason": None, "requested_at": 1})
    after = _task("add", 20, 22, run_id=run_id, position=1)
    sent = await _send(
        settings,
        Topics(settings.topic_prefix).tasks,
        [(key, b"\x00not avro at all"), (key, cancel), (key, RECORDS.encode(after))],
    )
    assert len({partition for partition, _ in sent}) == 1
    result = (await _results(settings, [run_id]))[run_id]
    assert result.ok and result.result == 42 and result.position == 1
    async with TopicReader(settings, Topics(settings.topic_prefix).dlq) as reader:
        values = await reader.wait_for(lambda k, _: k == key, 2)
    letters = sorted((Codec().decode(v).record for v in values), key=lambda r: int(str(r["offset"])))
    assert [int(str(r["offset"])) for r in letters] == [offset for _, offset in sent[:2]]
    assert letters[0]["value"] == b"\x00not avro at all" and "undecodable" in str(letters[0]["reason"])
    assert "CancelWorkflow" in str(letters[1]["reason"]) and letters[1]["topic"] == Topics(settings.topic_prefix).tasks


async def _isolated(settings: Settings, suffix: str) -> Settings:
    """Settings with topics (and so a worker group) of their own, under the session's prefix."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-{suffix}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    return own


async def test_at_most_concurrency_steps_run_at_once(settings: Settings) -> None:
    own = await _isolated(settings, "narrow")
    worker_steps.RUNNING.update(now=0, peak=0)
    tasks = [_task("track", 0.3) for _ in range(10)]
    await _send_tasks(own, tasks)  # all waiting before the worker starts: it must hold back
    narrow = StepWorker(own, Registry.from_module("worker_steps"), concurrency=3, worker_id="narrow")
    await narrow.start()
    try:
        results = await _results(own, [t.run_id for t in tasks], timeout=60)
    finally:
        await narrow.stop()
    assert all(r.ok for r in results.values()) and len(results) == 10
    assert worker_steps.RUNNING["peak"] == 3 and narrow.stats.steps_run == 10


def _spawn_worker(settings: Settings, worker_id: str) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio, dataclasses, logging, signal, sys\n"
        "from engine import Registry\n"
        "from streams import Settings\n"
        "from streams.processors import StepWorker\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "settings = Settings().replace(bootstrap=sys.argv[1], topic_prefix=sys.argv[2])\n"
        "async def main():\n"
        "    stop = asyncio.Event()\n"
        "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)\n"
        "    await StepWorker(settings, Registry.from_module('worker_steps'), worker_id=sys.argv[3]).run_until(stop)\n"
        "asyncio.run(main())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", code, settings.bootstrap, settings.topic_prefix, worker_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_step_killed_mid_flight_is_redelivered_to_another_worker(settings: Settings, tmp_path: Path) -> None:
    own = await _isolated(settings, "kill9")  # its own group: no other worker may take the task
    marker = tmp_path / "starts.txt"
    task = _task("mark_and_sleep", str(marker), 5)
    await _send_tasks(own, [task])
    first = _spawn_worker(own, "doomed")
    try:

        def started() -> bool:
            if first.poll() is not None:  # not worth waiting any longer
                raise RuntimeError(f"the first worker exited on its own (status {first.returncode})")
            return marker.exists() and bool(marker.read_text())

        await eventually(started, timeout=60, interval=0.1, what="the first worker to start the step")
    finally:
        first.kill()  # SIGKILL: no shutdown, no commit
        first.wait(timeout=10)
    second = StepWorker(own, Registry.from_module("worker_steps"), worker_id="survivor")
    await second.start()
    try:
        result = (await _results(own, [task.run_id], timeout=90))[task.run_id]
    finally:
        await second.stop()
    assert result.ok and result.result == "done" and result.worker == "survivor"
    starts = marker.read_text().splitlines()
    assert len(starts) == 2 and starts[0] != starts[1]  # two processes started it
