from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

from engine import (
    DuplicateNameError,
    InvalidDurationError,
    KflowError,
    Registry,
    UnknownStepError,
    UnknownWorkflowError,
    step,
    workflow,
)
from engine.runtime import step_definition, workflow_definition


@step
async def bare_step(x: int) -> int:
    return x + 1


@step(name="custom", max_retries=5, retry_delay="30s", timeout=None)
async def configured_step() -> str:
    return "ok"


@workflow
async def bare_workflow() -> None:
    return None


@workflow(name="checkout", max_duration="7d", tags=["a", "b"], durable=False)
async def configured_workflow(order: str) -> str:
    return order


def test_bare_and_configured_steps_carry_definitions() -> None:
    bare = step_definition(bare_step)
    custom = step_definition(configured_step)
    assert bare is not None and custom is not None
    assert (bare.name, bare.policy.max_retries, bare.policy.strategy, bare.timeout_ms) == (
        "bare_step",
        3,
        "exponential",
        60_000,
    )
    assert (custom.name, custom.policy.max_retries, custom.policy.delays_ms, custom.timeout_ms) == (
        "custom",
        5,
        (30_000,),
        None,
    )
    assert inspect.iscoroutinefunction(bare_step) and bare_step.__name__ == "bare_step"


def test_bare_and_configured_workflows_carry_definitions() -> None:
    bare = workflow_definition(bare_workflow)
    conf = workflow_definition(configured_workflow)
    assert bare is not None and bare.name == "bare_workflow" and bare.max_duration_ms is None
    assert conf is not None
    assert (conf.name, conf.max_duration_ms, conf.tags, conf.durable) == ("checkout", 7 * 86_400_000, ("a", "b"), False)


async def test_step_outside_a_workflow_just_runs() -> None:
    assert await bare_step(1) == 2


def test_bad_options_fail_at_decoration() -> None:
    with pytest.raises(InvalidDurationError):
        step(timeout="soon")
    with pytest.raises(InvalidDurationError):
        workflow(max_duration="forever")


def test_registry_lookups_and_unknown_names() -> None:
    registry = Registry([bare_step, configured_step, bare_workflow, configured_workflow, len, 42])
    assert registry.step("custom").fn is not None
    assert registry.workflow("checkout").name == "checkout"
    assert registry.workflow_for(configured_workflow).name == "checkout"
    assert sorted(registry.workflows) == ["bare_workflow", "checkout"]
    with pytest.raises(UnknownWorkflowError, match=r"no workflow named 'nope'.*bare_workflow, checkout"):
        registry.workflow("nope")
    with pytest.raises(UnknownStepError, match="no step named 'nope'"):
        registry.step("nope")
    with pytest.raises(UnknownWorkflowError):
        registry.workflow_for(len)
    assert issubclass(UnknownStepError, KflowError)


def test_name_clash_is_a_clear_error() -> None:
    @step(name="bare_step")
    async def impostor(x: int) -> int:
        return x

    with pytest.raises(DuplicateNameError, match="two different steps are named 'bare_step'"):
        Registry([bare_step, impostor])
    Registry([bare_step, bare_step])  # the same function twice is fine


def _write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def test_from_module_and_from_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_module(
        tmp_path,
        "kfreg_flows",
        """
        from engine import step, workflow
        @step
        async def fetch(): return 1
        @workflow
        async def flow(): return await fetch()
        helper = 3
    """,
    )
    _write_module(
        tmp_path,
        "kfreg_more",
        """
        from engine import workflow
        from kfreg_flows import fetch   # re-export: same function, no clash
        @workflow(name="other")
        async def other(): return None
    """,
    )
    _write_module(
        tmp_path,
        "kfreg_clash",
        """
        from engine import workflow
        @workflow(name="flow")
        async def not_the_same(): return None
    """,
    )
    single = Registry.from_module("kfreg_flows")
    assert (sorted(single.workflows), sorted(single.steps)) == (["flow"], ["fetch"])
    both = Registry.from_modules(["kfreg_flows", "kfreg_more"])
    assert sorted(both.workflows) == ["flow", "other"]
    with pytest.raises(DuplicateNameError, match="'flow'"):
        Registry.from_modules(["kfreg_flows", "kfreg_clash"])
