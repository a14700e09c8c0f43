"""Golden histories: recorded inputs, events and commands that live runs and replays must reproduce.

Each file in golden/ holds a workflow's inputs with the exact transition each produced. The test
checks that (1) a live run produces those transitions, and (2) for every prefix, a run rebuilt
with ``Run.replay`` from the recorded events decides the next input identically.
Regenerate (after an intended change, then review the diff) with KFLOW_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import pytest

import engine
from engine import FatalError, Registry, hook, runtime, shield, sleep, step, workflow
from engine.runtime import (
    CallArgs,
    CancelWorkflow,
    ErrorInfo,
    ResumeHook,
    Run,
    StartWorkflow,
    StepResult,
    TimerFired,
    Transition,
)

GOLDEN = Path(__file__).parent / "golden"


@step(max_retries=3, retry_delay="exponential")
async def g_charge(order_id: str, amount: float) -> str:
    return f"rcpt-{order_id}"


@step
async def g_pack(order_id: str, box: int) -> str:
    return f"box-{box}"


@step
async def g_reserve(n: int) -> str:
    return f"held-{n}"


@step
async def g_release(n: int) -> str:
    return f"released-{n}"


@workflow(name="golden_checkout", max_duration="7d")
async def golden_checkout(order_id: str, amount: float) -> dict[str, object]:
    receipt = await g_charge(order_id, amount)
    boxes = await asyncio.gather(g_pack(order_id, 1), g_pack(order_id, 2))
    await sleep("1h30m")
    approval = await hook("approval", timeout="2d")
    return {"receipt": receipt, "boxes": list(boxes), "approved": approval["ok"]}  # type: ignore[index]


@workflow(name="golden_cancel")
async def golden_cancel(n: int) -> str:
    try:
        await g_reserve(n)
        await sleep("1d")
        return "done"
    finally:
        async with shield():
            await g_release(n)


@workflow(name="golden_fallback")
async def golden_fallback(n: int) -> str:
    try:
        held = await g_reserve(n)
    except FatalError as exc:
        held = f"fallback after {exc}"
    try:
        await hook("confirm", timeout="1h")
    except engine.HookExpiredError:
        return f"{held}, unconfirmed"
    return f"{held}, confirmed"


REGISTRY = Registry([golden_checkout, golden_cancel, golden_fallback, g_charge, g_pack, g_reserve, g_release])


def ok(run_id: str, position: int, attempt: int, value: object, at: int) -> StepResult:
    return StepResult(
        run_id=run_id,
        position=position,
        attempt=attempt,
        ok=True,
        result=value,
        worker="golden",
        started_at=at,
        finished_at=at,
    )


def fail(run_id: str, position: int, attempt: int, error: ErrorInfo, at: int) -> StepResult:
    return StepResult(
        run_id=run_id,
        position=position,
        attempt=attempt,
        ok=False,
        error=error,
        worker="golden",
        started_at=at,
        finished_at=at,
    )


def timer(run_id: str, timer_id: str, at: int) -> TimerFired:
    kind, position, _ = timer_id.split(":")
    return TimerFired(run_id=run_id, timer_id=timer_id, position=int(position), kind=kind, fire_at=at, fired_at=at)


def start(run_id: str, name: str, *args: object) -> StartWorkflow:
    return StartWorkflow(run_id=run_id, workflow_name=name, args=CallArgs(args, {}), requested_at=1_000)


CONN = ErrorInfo(type="builtins.ConnectionError", message="reset", retryable=True)
FATAL = ErrorInfo(type="engine.FatalError", message="sold out", retryable=False)
H = 3_600_000

SCRIPTS: dict[str, list[tuple[int, object]]] = {
    "checkout": [
        (1_000, start("g1", "golden_checkout", "o-1", 9.5)),
        (2_000, fail("g1", 0, 1, CONN, 2_000)),
        (3_000, timer("g1", "retry:0:1", 3_000)),
        (3_500, ok("g1", 0, 2, "rcpt-o-1", 3_500)),
        (4_000, ok("g1", 2, 1, "box-2", 4_000)),
        (4_100, ok("g1", 2, 1, "box-2", 4_100)),
        (4_200, ok("g1", 1, 1, "box-1", 4_200)),
        (4_200 + 90 * 60_000, timer("g1", "sleep:3:1", 4_200 + 90 * 60_000)),
        (4_200 + 90 * 60_000, timer("g1", "sleep:3:1", 4_200 + 90 * 60_000)),
        (6 * H, ResumeHook(run_id="g1", token="g1:approval", payload={"ok": True}, requested_at=6 * H)),
        (7 * H, CancelWorkflow(run_id="g1", reason="late", requested_at=7 * H)),
    ],
    "cancel_cleanup": [
        (1_000, start("g2", "golden_cancel", 7)),
        (2_000, ok("g2", 0, 1, "held-7", 2_000)),
        (3_000, CancelWorkflow(run_id="g2", reason="customer asked", requested_at=3_000)),
        (3_100, CancelWorkflow(run_id="g2", reason="again", requested_at=3_100)),
        (
            3_500,
            TimerFired(
                run_id="g2", timer_id="sleep:1:1", position=1, kind="sleep", fire_at=2_000 + 24 * H, fired_at=3_500
            ),
        ),
        (4_000, ok("g2", 2, 1, "released-7", 4_000)),
    ],
    "fallback_expiry": [
        (1_000, start("g3", "golden_fallback", 3)),
        (2_000, fail("g3", 0, 1, FATAL, 2_000)),
        (2_500, ResumeHook(run_id="g3", token="g3:other", payload=1, requested_at=2_500)),
        (2_000 + H, timer("g3", "hook_timeout:1:1", 2_000 + H)),
    ],
}


# -- JSON codec for records (generic over dataclass fields, as the Avro layer will be) ---------


def encode(value: object) -> object:
    if isinstance(value, CallArgs):
        return {"args": [encode(v) for v in value.args], "kwargs": {k: encode(v) for k, v in value.kwargs.items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return fields if isinstance(value, ErrorInfo) else {"record": type(value).__name__, **fields}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(data: dict[str, object]) -> object:
    cls = getattr(runtime, str(data["record"]))
    fields: dict[str, object] = {}
    for name, value in data.items():
        if name == "record":
            continue
        if name == "args" and isinstance(value, dict):
            value = CallArgs(tuple(value["args"]), dict(value["kwargs"]))
        elif name == "error" and isinstance(value, dict):
            value = ErrorInfo(**value)
        fields[name] = value
    return cls(**fields)


def encode_transition(transition: Transition) -> dict[str, object]:
    return {"events": encode(transition.events), "commands": encode(transition.commands), "ignored": transition.ignored}


def run_live(script: list[tuple[int, object]]) -> list[dict[str, object]]:
    steps = []
    now, first = script[0]
    run, transition = Run.start(REGISTRY, first, now)  # type: ignore[arg-type]
    steps.append({"now_ms": now, "input": encode(first), **encode_transition(transition)})
    for now, received in script[1:]:
        transition = run.handle(received, now)  # type: ignore[arg-type]
        steps.append({"now_ms": now, "input": encode(received), **encode_transition(transition)})
    return steps


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_live_run_reproduces_the_golden_transitions(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    produced = json.loads(json.dumps(run_live(SCRIPTS[name])))
    if os.environ.get("KFLOW_REGEN_GOLDEN"):
        path.write_text(json.dumps({"script": name, "transitions": produced}, indent=1) + "\n")
    golden = json.loads(path.read_text())["transitions"]
    assert produced == golden


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_prefix_replays_to_identical_decisions(name: str) -> None:
    golden = json.loads((GOLDEN / f"{name}.json").read_text())["transitions"]
    history: list[object] = [decode(e) for e in golden[0]["events"]]
    for expected in golden[1:]:
        run = Run.replay(REGISTRY, history)  # type: ignore[arg-type]
        transition = run.handle(decode(expected["input"]), expected["now_ms"])  # type: ignore[arg-type]
        assert json.loads(json.dumps(encode_transition(transition))) == {
            k: expected[k] for k in ("events", "commands", "ignored")
        }
        history.extend(decode(e) for e in expected["events"])
        run.close()
    assert Run.replay(REGISTRY, history).finished  # type: ignore[arg-type]
