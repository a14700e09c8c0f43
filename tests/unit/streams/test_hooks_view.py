"""``kflow hooks list|info``: a run's hooks and their status, derived from its history — no server."""

from __future__ import annotations

import json

import pytest

from engine.runtime import CallArgs, HistoryEvent, HookCreated, HookExpired, HookReceived, WorkflowStarted
from streams import ops as _ops
from streams.ops import HookView, OpsError

T0 = 1_700_000_000_000
RUN = "r1"


def created(seq: int, position: int, name: str, token: str, expires_at: int | None = None) -> HookCreated:
    return HookCreated(
        run_id=RUN, seq=seq, timestamp=T0 + seq, position=position, name=name, token=token, expires_at=expires_at
    )


def received(seq: int, position: int, token: str, payload: object) -> HookReceived:
    return HookReceived(run_id=RUN, seq=seq, timestamp=T0 + seq, position=position, token=token, payload=payload)


def history() -> list[HistoryEvent]:
    return [
        created(2, 0, "approval", f"{RUN}:approval", expires_at=T0 + 60_000),
        received(3, -1, f"{RUN}:late", {"early": True}),  # before its hook() call: queued
        received(4, 0, f"{RUN}:approval", {"ok": True}),
        created(5, 1, "approval", f"{RUN}:approval#2", expires_at=T0 + 5),
        HookExpired(run_id=RUN, seq=6, timestamp=T0 + 6, position=1, token=f"{RUN}:approval#2"),
        created(7, 2, "review", f"{RUN}:review"),
    ]


def test_each_token_gets_its_status_times_and_payload_from_the_history() -> None:
    hooks = {hook.token.partition(":")[2]: hook for hook in _ops.hooks_of(RUN, history(), "running")}
    assert list(hooks) == ["approval", "late", "approval#2", "review"]  # first appearance order
    assert hooks["approval"] == HookView(
        f"{RUN}:approval",
        RUN,
        "approval",
        "received",
        position=0,
        created_at=T0 + 2,
        expires_at=T0 + 60_000,
        received_at=T0 + 4,
        payload={"ok": True},
    )
    assert (hooks["late"].status, hooks["late"].name, hooks["late"].payload) == ("queued", "late", {"early": True})
    assert (hooks["approval#2"].status, hooks["approval#2"].name, hooks["approval#2"].expired_at) == (
        "expired",
        "approval",
        T0 + 6,
    )
    assert (hooks["review"].status, hooks["review"].payload) == ("pending", None)


def test_a_queued_payload_taken_at_the_hook_call_is_received_and_one_left_when_the_run_ends_is_closed() -> None:
    token = f"{RUN}:late"
    taken = [received(2, -1, token, 1), created(3, 0, "late", token), received(4, 0, token, 1)]
    assert [h.status for h in _ops.hooks_of(RUN, taken, "running")] == ["received"]
    ended = _ops.hooks_of(RUN, history(), "cancelled")
    assert {h.token.partition(":")[2]: h.status for h in ended} == {
        "approval": "received",
        "late": "closed",
        "approval#2": "expired",
        "review": "closed",
    }
    started = WorkflowStarted(run_id=RUN, seq=1, timestamp=T0, workflow_name="wf", args=CallArgs((), {}))
    assert _ops.hooks_of(RUN, [started], "running") == []


def test_info_finds_a_token_or_says_which_hooks_the_run_has() -> None:
    hooks = _ops.hooks_of(RUN, history(), "running")
    assert _ops.find_hook(hooks, f"{RUN}:review").name == "review"
    with pytest.raises(OpsError, match=r"no hook r1:nope in the history of its run \(its hooks: approval, late, "):
        _ops.find_hook(hooks, f"{RUN}:nope")
    text = _ops.hook_text(hooks[0], "running")
    assert "status    received" in text and 'payload   {"ok": true}' in text
    assert "expires   2023-11-14 22:14:20 UTC" in text
    data = json.loads(json.dumps(_ops.hook_json(hooks[1])))
    assert data["status"] == "queued" and data["payload"] == {"early": True} and data["created_at"] is None


def test_the_table_has_one_line_per_hook() -> None:
    lines = _ops.hooks_table(_ops.hooks_of(RUN, history(), "running")).splitlines()
    assert lines[0].split()[:3] == ["TOKEN", "NAME", "STATUS"] and len(lines) == 5
    assert lines[2].split()[:3] == [f"{RUN}:late", "late", "queued"]
    assert _ops.hooks_table([]) == "no hooks"
