"""execute_step: the worker side of a step attempt."""

from __future__ import annotations

import asyncio

import pytest

from engine import FatalError, Registry, RetryableError, StepTimeoutError, step
from engine.runtime import CallArgs, ExecuteStep, execute_step, rebuild_exception
from engine.testing import FakeClock


class CustomError(Exception):
    pass


@step
async def ok(a: int, *, b: int) -> int:
    return a + b


@step
async def boom(kind: str) -> None:
    if kind == "fatal":
        raise FatalError("bad input")
    if kind == "retryable":
        raise RetryableError("later", retry_after="10s")
    if kind == "timeout_itself":
        raise TimeoutError("the step's own timeout")
    raise CustomError("custom")


@step
def sync_step(x: int) -> int:  # type: ignore[arg-type]
    return x * 3


@step(timeout="10ms")
async def too_slow() -> None:
    await asyncio.sleep(5)


REGISTRY = Registry([ok, boom, sync_step, too_slow])


def command(name: str, *args: object, timeout_ms: int | None = None, **kwargs: object) -> ExecuteStep:
    return ExecuteStep(
        run_id="r",
        workflow_name="wf",
        position=3,
        attempt=2,
        step_name=name,
        args=CallArgs(args, kwargs),
        timeout_ms=timeout_ms,
        scheduled_at=0,
    )


async def test_success_reports_result_and_identity() -> None:
    result = await execute_step(REGISTRY, command("ok", 1, b=2), FakeClock(5), worker="w1")
    assert (result.ok, result.result, result.position, result.attempt, result.worker) == (True, 3, 3, 2, "w1")
    assert result.started_at == result.finished_at == 5


@pytest.mark.parametrize(
    ("kind", "type_name", "retryable", "retry_after"),
    [
        ("fatal", "engine.FatalError", False, None),
        ("retryable", "engine.RetryableError", True, 10_000),
        ("custom", f"{__name__}.CustomError", True, None),
        ("timeout_itself", "builtins.TimeoutError", True, None),
    ],
)
async def test_errors_become_error_info(kind: str, type_name: str, retryable: bool, retry_after: int | None) -> None:
    result = await execute_step(REGISTRY, command("boom", kind, timeout_ms=1_000), FakeClock())
    assert not result.ok and result.error is not None
    info = result.error
    assert (info.type, info.retryable, info.retry_after_ms) == (type_name, retryable, retry_after)
    assert info.traceback and "Traceback" in info.traceback
    assert type(rebuild_exception(info)).__name__ == type_name.rsplit(".", 1)[1]


async def test_timeout_is_a_retryable_step_timeout_error() -> None:
    result = await execute_step(REGISTRY, command("too_slow", timeout_ms=10), FakeClock())
    assert result.error is not None
    assert (result.error.type, result.error.retryable) == ("engine.StepTimeoutError", True)
    assert isinstance(rebuild_exception(result.error), StepTimeoutError)


async def test_sync_steps_and_unknown_steps() -> None:
    result = await execute_step(REGISTRY, command("sync_step", 4), FakeClock())
    assert result.result == 12
    unknown = await execute_step(REGISTRY, command("nope"), FakeClock())
    assert unknown.error is not None
    assert (unknown.error.type, unknown.error.retryable) == ("engine.UnknownStepError", False)


def test_rebuild_never_imports_and_falls_back() -> None:
    from engine import StepFailedError
    from engine.runtime import ErrorInfo

    info = ErrorInfo(type="some_module_never_imported.Boom", message="m", retryable=True)
    rebuilt = rebuild_exception(info)
    assert isinstance(rebuilt, StepFailedError)
    assert rebuilt.error_type == "some_module_never_imported.Boom"
    assert isinstance(rebuild_exception(ErrorInfo(type="builtins.KeyError", message="k", retryable=True)), KeyError)
    not_an_exception = rebuild_exception(ErrorInfo(type="builtins.dict", message="x", retryable=True))
    assert isinstance(not_an_exception, StepFailedError)
