"""The client's pure parts: run ids, hook tokens, partitions, outcomes and run views (no network)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

import engine
from engine import runtime
from engine.runtime import CallArgs, ErrorInfo, RunFinished
from streams import partition_for
from streams.client import RUN_ID_NAMESPACE, outcome_of, run_id_for, run_id_of_token, run_info, workflow_name_of


def test_run_ids_without_a_key_are_fresh_uuid4_hex() -> None:
    ids = {run_id_for("checkout") for _ in range(100)}
    assert len(ids) == 100
    assert all(len(rid) == 32 and uuid.UUID(rid).version == 4 for rid in ids)


def test_an_idempotency_key_always_derives_the_same_run_id_per_workflow_name() -> None:
    first, again = run_id_for("checkout", "order-1"), run_id_for("checkout", "order-1")
    assert first == again == uuid.uuid5(RUN_ID_NAMESPACE, "checkout\0order-1").hex
    assert uuid.UUID(first).version == 5
    assert run_id_for("refund", "order-1") != first  # the key's scope is the workflow name
    assert run_id_for("checkout", "order-2") != first


def test_the_namespace_is_pinned_so_other_clients_derive_the_same_ids() -> None:
    assert str(RUN_ID_NAMESPACE) == "0c64a7fc-d3b7-486d-b08e-4b72457f58a9"
    assert (
        run_id_for("checkout", "o-1")
        == uuid.uuid5(uuid.UUID("0c64a7fc-d3b7-486d-b08e-4b72457f58a9"), "checkout\x00o-1").hex
    )


@pytest.mark.parametrize(("token", "run_id"), [("abc123:approval", "abc123"), ("r:a:b", "r"), ("r:", "r")])
def test_a_hook_token_names_its_run_before_the_first_colon(token: str, run_id: str) -> None:
    assert run_id_of_token(token) == run_id


@pytest.mark.parametrize("token", ["no-colon", ":approval", ""])
def test_a_token_without_a_run_id_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="<run_id>:<name>"):
        run_id_of_token(token)


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 7, 12, 64])
def test_partition_matches_aiokafkas_default_partitioner(partitions: int) -> None:
    everyone = list(range(partitions))
    keys = [uuid.uuid4().hex.encode() for _ in range(300)] + [b"", b"a", "é-ü".encode(), b"\xff" * 7]
    for key in keys:
        assert partition_for(key, partitions) == DefaultPartitioner()(key, everyone, everyone)


def test_workflow_names_come_from_the_string_or_the_decorated_function() -> None:
    @engine.workflow(name="renamed")
    async def original() -> None: ...

    assert workflow_name_of("by-name") == "by-name"
    assert workflow_name_of(original) == "renamed"
    with pytest.raises(engine.UnknownWorkflowError):
        workflow_name_of(lambda: None)


def _finished(status: str, **fields: object) -> RunFinished:
    return RunFinished(run_id="r1", workflow_name="wf", status=status, started_at=1, finished_at=2, **fields)  # type: ignore[arg-type]


def test_outcomes_return_or_raise_by_status() -> None:
    assert outcome_of(_finished("completed", result={"ok": True})) == {"ok": True}
    with pytest.raises(ValueError, match="bad amount"):
        outcome_of(
            _finished("failed", error=ErrorInfo(type="builtins.ValueError", message="bad amount", retryable=False))
        )
    with pytest.raises(engine.StepFailedError, match=r"nowhere\.Missing"):
        outcome_of(_finished("failed", error=ErrorInfo(type="nowhere.Missing", message="x", retryable=False)))
    with pytest.raises(engine.CancellationError):
        outcome_of(_finished("cancelled"))


def test_run_info_is_derived_from_the_history() -> None:
    started = runtime.WorkflowStarted(run_id="r1", seq=1, timestamp=100, workflow_name="wf", args=CallArgs((), {}))
    done = runtime.WorkflowCompleted(run_id="r1", seq=2, timestamp=250, result=7)
    assert run_info("r1", []) is None
    running = run_info("r1", [started])
    assert running is not None and (running.status, running.finished_at, running.started_at) == ("running", None, 100)
    info = run_info("r1", [started, done])
    assert info is not None and (info.status, info.result, info.finished_at) == ("completed", 7, 250)
    moved = runtime.WorkflowContinuedAsNew(run_id="r1", seq=2, timestamp=300, next_run_id="r2", args=CallArgs((), {}))
    chained = run_info("r1", [started, moved])
    assert chained is not None and (chained.status, chained.next_run_id) == ("continued_as_new", "r2")
