"""Engine records through the wire format and back: every type, every Payload/ErrorInfo shape."""

from __future__ import annotations

import dataclasses

import pytest

from engine import runtime
from engine.runtime import CallArgs, ErrorInfo
from schemas import PayloadError, RecordCodec, SchemaError

RECORDS = RecordCodec()
TYPES = [
    runtime.StartWorkflow,
    runtime.CancelWorkflow,
    runtime.ResumeHook,
    runtime.StepResult,
    runtime.TimerFired,
    runtime.RunFinished,
    runtime.ForgetRun,
    runtime.ScheduleCommand,
    runtime.ScheduleState,
    runtime.ExecuteStep,
    runtime.StartTimer,
    runtime.CancelTimer,
    *runtime.HISTORY_EVENT_TYPES,
]
ERROR = ErrorInfo(type="builtins.ValueError", message="bad", traceback="tb", retryable=True, retry_after_ms=1500)


def _sample(cls: type, fill_optional: bool) -> object:
    values: dict[str, object] = {}
    for field in dataclasses.fields(cls):
        has_default = field.default is not dataclasses.MISSING
        if has_default and not fill_optional:
            continue
        name = field.name
        if name == "args":
            values[name] = CallArgs((1, "two", [3.5]), {"k": {"nested": True}})
        elif name in ("result", "payload", "context"):
            values[name] = {"value": [1, 2, None], "text": "é"}
        elif name == "error":
            values[name] = ERROR
        elif name == "mac":
            values[name] = bytes(range(32))
        elif name in ("ok", "wait_for_completion", "paused"):
            values[name] = True
        elif name in ("running", "recent_runs", "requests", "buffered_runs"):
            values[name] = ("a", "b") if fill_optional else ()
        elif name == "buffered":
            values[name] = (1_700_000_000_000, 1_700_000_060_000) if fill_optional else ()
        elif name in (
            "position",
            "attempt",
            "max_retries",
            "parent_position",
            "command_position",
            "depth",
            "chain_attempt",
            "generation",
            "fires",
            "skipped",
            "completed",
            "failed",
            "cancelled",
        ) or name.endswith("_ms"):
            values[name] = 3
        elif name in ("seq", "range_start", "range_end") or name.endswith("_at") or name == "timestamp":
            values[name] = 1_700_000_000_123
        else:
            values[name] = f"{name}-value"
    return cls(**values)


@pytest.mark.parametrize("fill_optional", [False, True])
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_every_engine_record_round_trips(cls: type, fill_optional: bool) -> None:
    record = _sample(cls, fill_optional)
    assert RECORDS.decode(RECORDS.encode(record)) == record


def test_call_args_come_back_as_a_tuple_and_dict() -> None:
    start = runtime.StartWorkflow(run_id="r", workflow_name="w", args=CallArgs((1, 2), {"a": 1}), requested_at=1)
    back = RECORDS.decode(RECORDS.encode(start))
    assert isinstance(back, runtime.StartWorkflow) and back.args == CallArgs((1, 2), {"a": 1})


def test_a_value_json_cannot_carry_is_a_payload_error() -> None:
    step = runtime.StepResult(
        run_id="r", position=0, attempt=1, ok=True, result=object(), worker="w", started_at=1, finished_at=2
    )
    with pytest.raises(PayloadError, match="cloudpickle"):
        RECORDS.encode(step)


def test_cloudpickle_payloads_need_the_secret_to_read() -> None:
    pickled = RecordCodec(payload_codec="cloudpickle", secret=b"s3cret")
    step = runtime.StepResult(
        run_id="r", position=0, attempt=1, ok=True, result={1, 2}, worker="w", started_at=1, finished_at=2
    )
    data = pickled.encode(step)
    assert pickled.decode(data) == step
    with pytest.raises(PayloadError):
        RECORDS.decode(data)


def test_non_engine_records_are_refused() -> None:
    dead = RECORDS.codec.encode(
        "DeadLetter",
        {
            "topic": "t",
            "partition": 0,
            "offset": 1,
            "key": None,
            "value": b"x",
            "reason": "r",
            "error_type": "E",
            "failed_at": 1,
        },
    )
    with pytest.raises(SchemaError, match="DeadLetter records have no engine type"):
        RECORDS.decode(dead)
    with pytest.raises(SchemaError, match="not a kflow record type"):
        RECORDS.encode(ERROR)
