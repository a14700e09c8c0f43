"""The client's pyworkflow-parity queries on the real stack: ``list_runs`` (Cassandra's query tables, pages,
filters, ``since``), ``get_run``'s arguments and links, ``get_chain``, and ``cancel``'s answer and wait."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine import CancellationError, RunStatus
from engine.runtime import ChildWorkflowStarted
from parity_support import Parity, inbox_records, migrated, new_tag, parity_services
from streams import RunInfo, Settings
from support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parity]:
    async with parity_services(settings, "pclient", tmp_path_factory.mktemp("timers"), materialize=True) as found:
        await migrated(found)
        yield found


async def commands(app: Parity, run_id: str) -> list[str]:
    """The run's starts and cancels on the inbox (not the step results and timers that went there too)."""
    return [name for name in await inbox_records(app.settings, run_id) if name.endswith("Workflow")]


async def _events_named(app: Parity, run_id: str, name: str) -> list[object]:
    async def recorded() -> list[object]:
        return [e for e in await app.client.get_events(run_id) if type(e).__name__ == name]

    return await eventually(recorded, what=f"a {name} in run {run_id}")


async def test_list_runs_pages_newest_first_with_filters_and_since(app: Parity) -> None:
    tag = new_tag()
    ids = []
    for i in range(3):
        run_id = await app.client.start("summed", i, b=10, label=tag, idempotency_key=f"{tag}-{i}")
        assert await app.client.result(run_id, timeout=60) == {"label": tag, "total": i + 10}
        ids.append(run_id)
    failed = await app.client.start("doomed", tag)
    with pytest.raises(ValueError, match=f"{tag} exploded"):
        await app.client.result(failed, timeout=60)
    first = await app.client.get_run(ids[0])
    assert first is not None
    since = first.started_at  # every run of this test started at or after it, every earlier one before

    async def listed() -> list[RunInfo]:
        page = await app.client.list_runs(workflow="summed", since=since)
        assert [run.run_id for run in page.runs] == ids[::-1], page
        return page.runs

    newest = (await eventually(listed, timeout=60, what="the three runs materialized"))[0]
    assert (newest.status, newest.args, newest.kwargs) == (RunStatus.COMPLETED, (2,), {"b": 10, "label": tag})
    assert (newest.result, newest.idempotency_key, newest.parent_run_id) == (
        {"label": tag, "total": 12},
        f"{tag}-2",
        None,
    )
    runs, token = await app.client.list_runs(workflow="summed", since=since, limit=2)  # unpacks like pyworkflow's
    assert [run.run_id for run in runs] == ids[:0:-1] and token is not None
    rest = await app.client.list_runs(workflow="summed", since=since, limit=2, page_token=token)
    assert [run.run_id for run in rest.runs] == ids[:1] and rest.next_page_token is None
    with pytest.raises(ValueError, match="page token of a listing"):
        await app.client.list_runs(workflow="doomed", since=since, limit=2, page_token=token)
    later = await app.client.list_runs(workflow="summed", since=datetime.fromtimestamp(newest.started_at / 1000, UTC))
    assert [run.run_id for run in later.runs] == ids[2:]

    async def failed_listed() -> RunInfo:
        (run,) = (await app.client.list_runs(status=RunStatus.FAILED, workflow="doomed", since=since)).runs
        return run

    doomed = await eventually(failed_listed, timeout=60, what="the failed run materialized")
    assert doomed.run_id == failed and doomed.error is not None and doomed.error.type == "builtins.ValueError"
    everything = await app.client.list_runs(since=since)
    assert {run.run_id for run in everything.runs} == {*ids, failed}


async def test_get_run_and_listings_report_arguments_parent_and_children(app: Parity) -> None:
    parent = await app.client.start("family", 2)
    assert await app.client.result(parent, timeout=60) == [{"label": "sum", "total": 1}, {"label": "sum", "total": 2}]
    started = [e for e in await app.client.get_events(parent) if isinstance(e, ChildWorkflowStarted)]
    info = await app.client.get_run(parent)
    assert info is not None and info.args == (2,) and info.kwargs == {}
    assert info.children == tuple(e.child_run_id for e in sorted(started, key=lambda e: e.position))
    child = await app.client.get_run(info.children[1])
    assert child is not None and (child.parent_run_id, child.parent_position) == (parent, started[1].position)
    assert (child.args, child.children) == ((1, 1), ())

    async def listed() -> RunInfo:
        runs = (await app.client.list_runs(workflow="family", since=info.started_at)).runs
        assert len(runs) == 1  # (an empty page until the materializer has written it: asked again)
        (run,) = runs
        assert run.status == RunStatus.COMPLETED
        return run

    row = await eventually(listed, timeout=60, what="the parent materialized")
    assert row.children == info.children  # from the runs row (migration 003), the same as from the history


async def test_get_chain_lists_every_run_of_the_chain_from_any_of_them(app: Parity) -> None:
    first = await app.client.start("loop", 3)
    assert await app.client.result(first, timeout=60) == "done"
    chain = await app.client.get_chain(first)
    ids = [run.run_id for run in chain]
    assert len(ids) == 4 and ids[0] == first
    assert [run.status for run in chain] == [RunStatus.CONTINUED_AS_NEW] * 3 + [RunStatus.COMPLETED]
    assert [run.continued_to for run in chain[:-1]] == ids[1:] and [run.continued_from for run in chain[1:]] == ids[:-1]
    assert [run.args for run in chain] == [(3,), (2,), (1,), (0,)]
    for member in ids[1:]:
        assert [run.run_id for run in await app.client.get_chain(member)] == ids
    assert await app.client.get_chain(uuid.uuid4().hex) == []

    async def materialized() -> bool:
        return len((await app.client.list_runs(workflow="loop", since=chain[0].started_at)).runs) == 4

    await eventually(materialized, timeout=60, what="the chain materialized")
    assert await app.client.get_chain(ids[2]) == chain  # read from the rows now: the same runs


async def test_cancel_answers_whether_the_run_was_running_and_sends_nothing_for_a_finished_one(app: Parity) -> None:
    run_id = await app.client.start("sleeper", new_tag())
    await _events_named(app, run_id, "TimerScheduled")
    assert await app.client.cancel(run_id, reason="not needed") is True
    with pytest.raises(CancellationError):
        await app.client.result(run_id, timeout=60)
    assert await app.client.cancel(run_id) is False
    assert await app.client.cancel(run_id, wait=True) is False
    assert await commands(app, run_id) == ["StartWorkflow", "CancelWorkflow"]
    done = await app.client.start("summed", 1)
    await app.client.result(done, timeout=60)
    assert await app.client.cancel(done) is False and await commands(app, done) == ["StartWorkflow"]


async def test_cancel_with_wait_returns_once_the_run_has_finished(app: Parity) -> None:
    run_id = await app.client.start("sleeper", new_tag())
    await _events_named(app, run_id, "TimerScheduled")
    assert await app.client.cancel(run_id, wait=True, timeout=60) is True
    info = await app.client.get_run(run_id)  # no result() call: the wait already saw it end
    assert info is not None and info.status == RunStatus.CANCELLED


async def test_cancel_with_wait_raises_timeout_error_while_the_run_shields_its_work(app: Parity) -> None:
    run_id = await app.client.start("stubborn", new_tag())
    await _events_named(app, run_id, "TimerScheduled")
    with pytest.raises(TimeoutError, match=f"run {run_id} did not finish within 1 s of its cancel request"):
        await app.client.cancel(run_id, wait=True, timeout=1)
    await _events_named(app, run_id, "CancelRequested")  # the request stands
    info = await app.client.get_run(run_id)
    assert info is not None and info.status == RunStatus.RUNNING


async def test_cancel_of_a_run_without_history_is_sent_and_an_unknown_one_is_dead_lettered(app: Parity) -> None:
    unknown = uuid.uuid4().hex
    assert await app.client.cancel(unknown) is True  # a start may be on its way: the orchestrator judges
    assert await commands(app, unknown) == ["CancelWorkflow"]
