"""Workflows of test_children_close.py: a parent's end cancels its running child; handle.cancel(); result(timeout)."""

from __future__ import annotations

from engine import ChildWorkflowFailedError, ChildWorkflowHandle, sleep, start_child_workflow, step, workflow


@step
async def tidy_up(tag: str) -> str:
    return f"tidied {tag}"


@workflow
async def long_child(tag: str) -> str:
    try:
        await sleep("1h")
    finally:
        await tidy_up(tag)  # the cleanup a cancellation runs
    return "woke"


@workflow
async def leaving_parent(tag: str) -> str:
    """Starts a child and ends at once: the close policy ("cancel") cancels the child."""
    handle = await start_child_workflow(long_child, tag, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    return handle.child_run_id


@workflow
async def impatient_parent(tag: str) -> str:
    """Waits for its child at most a second (a durable timer), then ends: the child is cancelled."""
    handle = await start_child_workflow(long_child, tag, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    try:
        await handle.result(timeout="1s")
    except TimeoutError:
        return f"timed out while {(await handle.get_status()).value}"
    return "the child ended first"


@workflow
async def cancelling_parent(tag: str) -> list[object]:
    """Cancels its child through the handle, then sees it end cancelled."""
    handle = await start_child_workflow(long_child, tag, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    await tidy_up("parent")  # a durable wait: the child runs meanwhile
    asked = await handle.cancel("the parent changed its mind")
    try:
        await handle.result()
    except ChildWorkflowFailedError as exc:
        return [asked, exc.error_type, (await handle.get_status()).value, await handle.cancel()]
    return [asked, "the child completed"]
