"""The orchestrator's state topic on the real broker: run markers, restore checkpoints, ForgetRun, and
cancels that follow a continue-as-new chain."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from engine import CancellationError, Registry, runtime
from schemas import Codec, RecordCodec
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import consumer, producer
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import eventually

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Stack:
    settings: Settings
    registry: Registry
    orchestrator: Orchestrator
    client: Client

    async def restart_orchestrator(self) -> Orchestrator:
        await self.orchestrator.stop()
        self.orchestrator = Orchestrator(self.settings, self.registry, checkpoint_interval=0)
        await self.orchestrator.start()
        return self.orchestrator


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path) -> AsyncIterator[Stack]:
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-state{uuid.uuid4().hex[:6]}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("e2e_workflows")
    delay = TimerProcessor(own, state_dir=tmp_path / "delay")
    worker = StepWorker(own, registry, concurrency=8)
    found = Stack(
        own, registry, Orchestrator(own, registry, checkpoint_interval=0), Client(settings=own, registry=registry)
    )
    for service in (found.orchestrator, delay, worker):
        await service.start()
    async with found.client:
        yield found
    for service in (worker, delay, found.orchestrator):
        await service.stop()


async def _adopted(orchestrator: Orchestrator, partitions: int) -> None:
    await eventually(
        lambda: len(orchestrator.partitions) >= partitions,
        timeout=60,
        what="the restarted orchestrator to adopt its partitions",
    )


async def _events(client: Client, run_id: str, name: str) -> list[object]:
    async def found() -> list[object]:
        return [e for e in await client.get_events(run_id) if type(e).__name__ == name]

    return await eventually(found, what=f"a {name} in the history of {run_id}")


async def _dead_letter_reasons(settings: Settings, key: bytes, count: int) -> list[str]:
    codec = Codec()
    reader = consumer(settings.bootstrap)
    await reader.start()
    found: list[str] = []
    try:
        tps = [TopicPartition(Topics(settings.topic_prefix).dlq, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)

        async def enough() -> bool:
            for messages in (await reader.getmany(timeout_ms=300)).values():
                found.extend(
                    str(r["reason"]) for r in (codec.decode(m.value).record for m in messages) if r["key"] == key
                )
            return len(found) >= count

        await eventually(enough, interval=0, what=lambda: f"{count} dead letter(s) keyed {key!r}; found {found}")
    finally:
        await reader.stop()
    return found


async def test_a_restart_restores_from_the_checkpoint_and_knows_finished_runs_by_their_markers(stack: Stack) -> None:
    finished = [await stack.client.start("sum_three", i, 1, 1, idempotency_key=f"k{i}") for i in range(12)]
    for i, run_id in enumerate(finished):
        assert await stack.client.result(run_id, timeout=30) == i + 2
    waiting = await stack.client.start("approval", "o-1")
    await _events(stack.client, waiting, "HookCreated")
    total_events = sum([len(await stack.client.get_events(r)) for r in [*finished, waiting]])

    orchestrator = await stack.restart_orchestrator()
    await _adopted(orchestrator, stack.settings.partitions)
    # only the history of the run still waiting is applied (the finished runs come from their markers) and
    # reading starts at the checkpoints, not at the beginning of the history partitions
    assert orchestrator.stats.restored_events == len(await stack.client.get_events(waiting))
    assert orchestrator.stats.history_read < total_events / 2
    known = {run_id: status for logic in orchestrator.partitions.values() for run_id, status in logic.finished.items()}
    assert all(known.get(run_id) == "completed" for run_id in finished)
    # a start with a used idempotency key is still the first run, not a new one
    assert await stack.client.start("sum_three", 3, 1, 1, idempotency_key="k3") == finished[3]
    await stack.client.resume_hook(f"{waiting}:approval", {"ok": True})
    assert await stack.client.result(waiting, timeout=30) == {"order_id": "o-1", "approved": True}


async def test_a_forgotten_run_is_gone_after_a_restart_and_its_late_records_are_dead_letters(stack: Stack) -> None:
    run_id = await stack.client.start("sum_three", 1, 1, 1)
    assert await stack.client.result(run_id, timeout=30) == 3
    records = RecordCodec()
    sender = producer(stack.settings.bootstrap)
    await sender.start()
    try:
        inbox = Topics(stack.settings.topic_prefix).inbox
        forget = runtime.ForgetRun(run_id=run_id, reason="test", requested_at=1)
        sent = await sender.send_and_wait(inbox, records.encode(forget), key=run_id.encode())
        # Applied in memory is not enough: the restart below could abort the transaction carrying the tombstone.
        tp = TopicPartition(inbox, sent.partition)

        async def committed() -> bool:
            return (await stack.orchestrator._inbox.committed(tp) or 0) > sent.offset

        await eventually(committed, what="the ForgetRun to be committed")
        assert not any(run_id in logic.finished for logic in stack.orchestrator.partitions.values())
        orchestrator = await stack.restart_orchestrator()
        await _adopted(orchestrator, stack.settings.partitions)
        assert not any(run_id in logic.finished for logic in orchestrator.partitions.values())
        late = runtime.StepResult(
            run_id=run_id, position=0, attempt=1, ok=True, result=5, worker="late", started_at=1, finished_at=2
        )
        await sender.send_and_wait(inbox, records.encode(late), key=run_id.encode())
    finally:
        await sender.stop()
    reasons = await _dead_letter_reasons(stack.settings, run_id.encode(), 1)
    assert any(f"no run {run_id}" in reason for reason in reasons), reasons


async def test_cancelling_a_parent_reaches_a_child_that_continued_as_new(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    parent = await stack.client.start("parent_of_looper", tag)
    first_child = (await _events(stack.client, parent, "ChildWorkflowStarted"))[0].child_run_id  # type: ignore[attr-defined]
    # follow the chain to the run that sleeps (the parent only knows the first child's id)
    current = first_child
    for _ in range(2):
        current = (await _events(stack.client, current, "WorkflowContinuedAsNew"))[0].next_run_id  # type: ignore[attr-defined]
    await _events(stack.client, current, "TimerScheduled")
    await stack.client.cancel(parent, reason="stop the chain")
    with pytest.raises(CancellationError):
        await stack.client.result(parent, timeout=30)
    with pytest.raises(CancellationError):
        await stack.client.result(first_child, timeout=30)  # result() follows the chain to its last run
    names = [type(e).__name__ for e in await stack.client.get_events(current)]
    assert names[-1] == "WorkflowCancelled" and "CancelRequested" in names


async def test_the_id_of_a_forgotten_run_with_an_idempotency_key_is_never_reused(stack: Stack) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    run_id = await stack.client.start("sum_three", 1, 2, 3, idempotency_key=key)
    assert await stack.client.result(run_id, timeout=30) == 6
    sender = producer(stack.settings.bootstrap)
    await sender.start()
    try:
        forget = runtime.ForgetRun(run_id=run_id, reason="test", requested_at=1)
        await sender.send_and_wait(
            Topics(stack.settings.topic_prefix).inbox, RecordCodec().encode(forget), key=run_id.encode()
        )
    finally:
        await sender.stop()
    await eventually(
        lambda: any(logic.finished.get(run_id) == "forgotten" for logic in stack.orchestrator.partitions.values()),
        what="the ForgetRun to be applied",
    )
    orchestrator = await stack.restart_orchestrator()
    await _adopted(orchestrator, stack.settings.partitions)
    # the key still names the first run; its start is refused on the run's partition, with the reason
    assert await stack.client.start("sum_three", 7, 7, 7, idempotency_key=key) == run_id
    reasons = await _dead_letter_reasons(stack.settings, run_id.encode(), 1)
    assert any("was compacted" in reason and "new key" in reason for reason in reasons), reasons
    assert [type(e).__name__ for e in await stack.client.get_events(run_id)].count("WorkflowStarted") == 1


async def test_the_orchestrator_creates_a_missing_state_topic_and_refuses_a_deleting_one(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streams import InternalTopicError, TopicDriftError, topic_config

    tag = uuid.uuid4().hex[:6]
    old = settings.replace(topic_prefix=f"{settings.topic_prefix}-nostate{tag}")
    await create_topics(old.bootstrap, Topics(old.topic_prefix), old.partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=old.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([Topics(old.topic_prefix).state])  # topics made before the state topic existed

        async def state_topic_gone() -> bool:
            return Topics(old.topic_prefix).state not in await admin.list_topics()

        await eventually(state_topic_gone, interval=0.1, what="the state topic to be deleted")
        orchestrator = Orchestrator(old, Registry.from_module("e2e_workflows"))
        await orchestrator.start()
        await orchestrator.stop()
        config = await topic_config(admin, Topics(old.topic_prefix).state)
        assert config["cleanup.policy"] == "compact"
        wrong = settings.replace(topic_prefix=f"{settings.topic_prefix}-badstate{tag}")
        wrong_topics = Topics(wrong.topic_prefix)
        await admin.create_topics(
            [
                NewTopic(topic, num_partitions=wrong.partitions, replication_factor=1)
                for topic in (wrong_topics.state, wrong_topics.inbox)
            ]
        )
        with pytest.raises(TopicDriftError, match=r"state has cleanup\.policy=delete, expected compact"):
            await create_topics(wrong.bootstrap, wrong_topics, wrong.partitions)
        with pytest.raises(InternalTopicError, match="must be compacted"):
            await Orchestrator(wrong, Registry.from_module("e2e_workflows")).start()
    finally:
        await admin.close()
