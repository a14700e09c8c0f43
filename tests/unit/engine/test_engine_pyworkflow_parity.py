"""Code written for pyworkflow-engine 0.1.10 ports by changing imports: its names, decorator options and error
shapes exist in ``engine`` (or are deliberately elsewhere, each with its reason)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import engine
from conftest import START_MS
from engine import (
    CancellationError,
    ChildWorkflowDepthError,
    ChildWorkflowError,
    ChildWorkflowFailedError,
    EventLimitExceededError,
    EventLimits,
    FatalError,
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    InvalidTokenError,
    KflowError,
    MaxNestingDepthError,
    Registry,
    RetryableError,
    StepContext,
    WorkflowError,
    WorkflowNotFoundError,
    hook,
    scheduled_workflow,
    sleep,
    step,
    workflow,
)
from engine.runtime import CallArgs, ExecuteStep, StepFailed, execute_step, hook_refusal_error, step_definition
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]

# pyworkflow-engine 0.1.10's ``pyworkflow.__all__``, as released.
PYWORKFLOW_0_1_10 = """
CalendarSpec CancellationError ChildWorkflowError ChildWorkflowFailedError ChildWorkflowHandle ConfigurationError
DiscoveryError FatalError FileStorageBackend HookAlreadyReceivedError HookExpiredError HookNotFoundError
InMemoryStorageBackend InvalidTokenError LocalContext LocalRuntime LocalScheduler MaxNestingDepthError MockContext
OverlapPolicy ResumeResult RetryableError RunStatus Runtime Schedule ScheduleSpec ScheduleStatus
ScheduledWorkflowMetadata StepContext StorageBackend SuspensionSignal TypedHook WorkflowAlreadyRunningError
WorkflowContext WorkflowError WorkflowNotFoundError WorkflowRun __version__ activate_scheduled_workflows
backfill_schedule bind_step_context bind_workflow_context cancel_workflow configure configure_from_yaml
configure_logging continue_as_new create_schedule define_hook delete_schedule discover_workflows get_config
get_context get_logger get_runtime get_schedule get_scheduled_workflow get_step get_step_context get_storage
get_workflow get_workflow_chain get_workflow_events get_workflow_run has_context has_step_context hook
list_scheduled_workflows list_schedules list_steps list_workflows pause_schedule register_runtime reset_config
reset_context resume resume_hook resume_schedule scheduled_workflow set_context set_step_context shield sleep start
start_child_workflow step trigger_schedule update_schedule workflow
""".split()

# The names kflow deliberately does not export from ``engine`` (the authoring API), and why.
NOT_FROM_ENGINE = {
    "__version__": "the package's version: importlib.metadata.version('kflow') or `kflow --version`",
    # storage and runtimes: kflow's runtime is Kafka + Cassandra, run by processes, not chosen in code
    "StorageBackend": "no pluggable storage: the history is the Kafka topic, Cassandra a view (storage package)",
    "FileStorageBackend": "no file storage: histories live on <prefix>.history",
    "InMemoryStorageBackend": "tests use engine.testing.InMemoryDriver",
    "Runtime": "one runtime: the orchestrator and step workers (`kflow processor`, `kflow worker`)",
    "LocalRuntime": "tests use engine.testing.InMemoryDriver; `kflow dev up` runs the real one locally",
    "get_runtime": "no runtime registry",
    "register_runtime": "no runtime registry",
    "LocalScheduler": "schedules run inside the orchestrator (`kflow processor`)",
    "LocalContext": "a runtime's context class; workflow code gets engine.WorkflowContext from get_context()",
    "MockContext": "tests use engine.testing.InMemoryDriver with a FakeClock",
    "set_context": "set by the runtime only: the context is the running run's",
    "reset_context": "set by the runtime only",
    # configuration and logging
    "configure": "configuration is KFLOW_* environment variables (streams.Settings.from_env)",
    "configure_from_yaml": "configuration is KFLOW_* environment variables",
    "get_config": "streams.Settings.from_env()",
    "reset_config": "no global configuration",
    "get_storage": "no storage object: streams.Client reads runs (get_run, get_events)",
    "configure_logging": "standard logging (`--log-level` on the commands)",
    "get_logger": "standard logging: logging.getLogger; get_context().log in workflow code",
    "bind_workflow_context": "standard logging: get_context().log adds the run id and workflow name",
    "bind_step_context": "standard logging: get_step_info() gives the run id, position and attempt",
    # registry and discovery: explicit engine.Registry, no global registry
    "discover_workflows": "engine.Registry.from_module(s) / `-A MODULE`",
    "DiscoveryError": "a module that fails to import raises its own error (`-A`: streams' AppLoadError)",
    "get_workflow": "engine.Registry.workflow(name)",
    "list_workflows": "engine.Registry.workflows",
    "get_step": "engine.Registry.step(name)",
    "list_steps": "engine.Registry.steps",
    "get_scheduled_workflow": "engine.Registry.schedules / engine.runtime.declared_schedule(fn)",
    "list_scheduled_workflows": "engine.Registry.schedules",
    "ScheduledWorkflowMetadata": "engine.runtime.DeclaredSchedule",
    "activate_scheduled_workflows": "streams.Client.schedules.activate (`kflow schedules activate -A`)",
    # client functions: methods of streams.Client, which talks to Kafka
    "start": "streams.Client.start",
    "resume": "nothing to call: a run resumes by itself when its input arrives",
    "cancel_workflow": "streams.Client.cancel",
    "get_workflow_run": "streams.Client.get_run",
    "get_workflow_events": "streams.Client.get_events",
    "get_workflow_chain": "streams.Client.get_chain",
    "WorkflowRun": "streams.RunInfo",
    "resume_hook": "streams.Client.resume_hook",
    "ResumeResult": "Client.resume_hook returns 'delivered' / 'queued' / 'sent', raises HookDeliveryError",
    "create_schedule": "streams.Client.schedules.create",
    "get_schedule": "streams.Client.schedules.get",
    "list_schedules": "streams.Client.schedules.list",
    "update_schedule": "streams.Client.schedules.update",
    "pause_schedule": "streams.Client.schedules.pause",
    "resume_schedule": "streams.Client.schedules.resume",
    "delete_schedule": "streams.Client.schedules.delete",
    "trigger_schedule": "streams.Client.schedules.trigger",
    "backfill_schedule": "streams.Client.schedules.backfill",
    "Schedule": "engine.runtime.ScheduleState (what Client.schedules returns)",
    "ScheduleStatus": "ScheduleState.paused (a bool) instead of an enum",
}


def test_every_pyworkflow_name_is_in_engine_or_deliberately_elsewhere() -> None:
    assert len(PYWORKFLOW_0_1_10) == len(set(PYWORKFLOW_0_1_10)) == 89
    assert set(NOT_FROM_ENGINE) <= set(PYWORKFLOW_0_1_10)
    assert all(reason.strip() for reason in NOT_FROM_ENGINE.values())
    authoring = [name for name in PYWORKFLOW_0_1_10 if name not in NOT_FROM_ENGINE]
    missing = [name for name in authoring if name not in engine.__all__ or getattr(engine, name, None) is None]
    assert missing == []
    assert not set(NOT_FROM_ENGINE) & set(engine.__all__)


def test_pyworkflow_error_names_keep_its_hierarchy() -> None:
    assert WorkflowError is KflowError
    assert all(issubclass(getattr(engine, n), WorkflowError) for n in engine.__all__ if n.endswith("Error"))
    assert MaxNestingDepthError is ChildWorkflowDepthError and issubclass(MaxNestingDepthError, ChildWorkflowError)
    assert issubclass(ChildWorkflowFailedError, ChildWorkflowError)
    assert issubclass(EventLimitExceededError, FatalError) and EventLimitExceededError.retryable is False
    assert issubclass(InvalidTokenError, ValueError) and issubclass(WorkflowNotFoundError, LookupError)


def test_errors_keep_metadata_and_reason() -> None:
    retry = RetryableError("rate limited", retry_after="30s", status=429, endpoint="/v1")
    assert (retry.message, retry.retry_after, retry.metadata) == (
        "rate limited",
        "30s",
        {"status": 429, "endpoint": "/v1"},
    )
    fatal = FatalError("insufficient funds", balance=3)
    assert (fatal.message, fatal.metadata, str(fatal)) == ("insufficient funds", {"balance": 3}, "insufficient funds")
    assert CancellationError("stop", reason="user").reason == "user" and CancellationError().reason is None
    assert RetryableError("x").metadata == {} and EventLimitExceededError("too long").metadata == {}


# -- decorator options pyworkflow has ------------------------------------------------------------------------


@workflow(recover_on_worker_loss=True, max_recovery_attempts=5, tags=["a"])
async def recovering() -> str:
    await sleep("1s", name="pause")  # pyworkflow's sleep takes a name
    return "ok"


@scheduled_workflow(interval="1h", recover_on_worker_loss=False, max_recovery_attempts=0)
async def scheduled_recovering() -> None:
    return None


@step(metadata={"team": "payments"})
async def with_metadata() -> str:
    return "done"


async def test_decorator_options_are_accepted_and_stored(make_driver: Make, clock: FakeClock) -> None:
    defn = Registry([recovering]).workflow("recovering")
    assert (defn.recover_on_worker_loss, defn.max_recovery_attempts) == (True, 5)
    scheduled = Registry([scheduled_recovering]).workflow("scheduled_recovering")
    assert (scheduled.recover_on_worker_loss, scheduled.max_recovery_attempts) == (False, 0)
    step_defn = step_definition(with_metadata)
    assert step_defn is not None and step_defn.metadata == {"team": "payments"}
    driver = make_driver(recovering)
    run_id = driver.start(recovering)
    await driver.run_until_idle()
    clock.advance("1s")
    await driver.run_until_idle()
    assert driver.result(run_id) == "ok"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"recover_on_worker_loss": "yes"}, TypeError),
        ({"max_recovery_attempts": 1.5}, TypeError),
        ({"max_recovery_attempts": -1}, ValueError),
    ],
)
def test_bad_recovery_options_fail_at_import(options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        workflow(**options)  # type: ignore[call-overload]


def test_step_metadata_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="metadata must be a mapping"):
        step(metadata=["team"])  # type: ignore[call-overload]


def test_step_context_to_dict_and_from_dict() -> None:
    class Order(StepContext):
        tenant: str
        count: int = 0

    ctx = Order(tenant="t1", count=2)
    assert ctx.to_dict() == {"tenant": "t1", "count": 2}
    assert Order.from_dict(ctx.to_dict()) == ctx and type(Order.from_dict({"tenant": "x"})) is Order


# -- RetryableError(retry_after=...) on the worker ------------------------------------------------------------


@step
async def rate_limited(retry_after: object) -> None:
    raise RetryableError("slow down", retry_after=retry_after)


@pytest.mark.parametrize(
    ("retry_after", "expected_ms"),
    [
        ("30s", 30_000),
        (12, 12_000),
        (1.5, 1_500),
        (timedelta(minutes=2), 120_000),
        (datetime.fromtimestamp((START_MS + 90_000) / 1000, UTC), 90_000),  # aware: until then
        (datetime.fromtimestamp((START_MS + 45_000) / 1000, UTC).replace(tzinfo=None), 45_000),  # naive = UTC
        (datetime.fromtimestamp((START_MS - 5_000) / 1000, UTC), 0),  # in the past: at once
    ],
)
async def test_retry_after_of_every_kind_reaches_the_error_info(retry_after: object, expected_ms: int) -> None:
    clock = FakeClock(START_MS)
    cmd = ExecuteStep(
        run_id="r",
        workflow_name="wf",
        position=0,
        attempt=1,
        step_name="rate_limited",
        args=CallArgs((retry_after,), {}),
        scheduled_at=0,
    )
    outcome = await execute_step(Registry([rate_limited]), cmd, clock)
    assert outcome.error is not None and outcome.error.retry_after_ms == expected_ms


until_a_time_calls: list[int] = []


@step(max_retries=2)
async def until_a_time(at_ms: int) -> str:
    until_a_time_calls.append(at_ms)
    if len(until_a_time_calls) == 1:
        raise RetryableError("not yet", retry_after=datetime.fromtimestamp(at_ms / 1000, UTC))
    return "done"


@workflow
async def waits_for_a_time() -> str:
    return await until_a_time(START_MS + 600_000)


async def test_the_retry_waits_until_the_datetime(make_driver: Make, clock: FakeClock) -> None:
    until_a_time_calls.clear()
    driver = make_driver(waits_for_a_time, until_a_time)
    run_id = driver.start(waits_for_a_time)
    await driver.run_until_idle()
    failed = [e for e in driver.history(run_id) if isinstance(e, StepFailed)]
    assert len(failed) == 1 and failed[0].retry_at == START_MS + 600_000  # not the policy's 1 s
    clock.advance("9m")
    await driver.run_until_idle()
    assert driver.status(run_id) == "running"
    clock.advance("1m")
    await driver.run_until_idle()
    assert driver.result(run_id) == "done"


# -- hook refusals, unknown runs, event warnings --------------------------------------------------------------


@workflow
async def approval() -> object:
    try:
        return await hook("approval", timeout="1m")
    except HookExpiredError:
        return await hook("approval")


async def test_the_engine_refusals_map_to_pyworkflow_hook_errors(make_driver: Make, clock: FakeClock) -> None:
    driver = make_driver(approval)
    run_id = driver.start(approval)
    await driver.run_until_idle()
    clock.advance("2m")
    await driver.run_until_idle()  # the first hook expired; the second waits on "approval#2"
    assert driver.resume_hook(f"{run_id}:approval#5", {}).ignored is None  # queued for a later hook() call
    refusals = {
        "expired": driver.resume_hook(f"{run_id}:approval", {}).ignored,
        "malformed": driver.resume_hook(f"{run_id}:approval#1", {}).ignored,
        "received": driver.resume_hook(f"{run_id}:approval#5", {}).ignored,
    }
    assert driver.resume_hook(f"{run_id}:approval#2", {"ok": True}).ignored is None
    assert driver.result(run_id) == {"ok": True}
    kinds = {name: hook_refusal_error(text or "") for name, text in refusals.items()}
    assert kinds == {"expired": HookExpiredError, "malformed": InvalidTokenError, "received": HookAlreadyReceivedError}
    assert hook_refusal_error("payload for token 'r:a' rejected by its schema: bad") is None
    assert hook_refusal_error("no run r9 on this partition") is HookNotFoundError


async def test_an_unknown_run_is_workflow_not_found(make_driver: Make) -> None:
    driver = make_driver(approval)
    with pytest.raises(WorkflowNotFoundError, match="unknown run nope"):
        driver.status("nope")
    with pytest.raises(WorkflowNotFoundError):
        driver.cancel("nope")


@step
async def noop() -> None:
    return None


@workflow(event_limits=EventLimits(soft=3, hard=1_000, event_warning_interval=4))
async def chatty(n: int) -> int:
    for _ in range(n):
        await noop()
    return n


async def test_the_warning_repeats_every_interval_past_the_soft_limit(
    make_driver: Make, caplog: pytest.LogCaptureFixture
) -> None:
    driver = make_driver(chatty, noop)
    with caplog.at_level(logging.WARNING, logger="engine"):
        run_id = driver.start(chatty, 8)  # 1 + 8 × 2 events + WorkflowCompleted = 18
        await driver.run_until_idle()
    assert driver.result(run_id) == 8
    counts = [
        r.getMessage().split("history has ")[1].split(" ")[0] for r in caplog.records if "soft limit" in r.getMessage()
    ]
    # Marks 3, 7, 11, 15: each crossed once (a step's StepScheduled + StepCompleted per activation).
    assert counts == ["4", "8", "12", "16"]


def test_event_warning_interval_is_validated() -> None:
    assert EventLimits().event_warning_interval == 100
    with pytest.raises(ValueError, match="event_warning_interval"):
        EventLimits(event_warning_interval=0)


def test_the_porting_guide_has_a_row_for_every_pyworkflow_name() -> None:
    guide = Path(__file__).resolve().parents[3] / "docs" / "pyworkflow.md"
    rows = [line for line in guide.read_text("utf-8").splitlines() if line.startswith("| ")]
    first_cells = " ".join(row.split("|")[1] for row in rows)
    assert [name for name in PYWORKFLOW_0_1_10 if f"`{name}`" not in first_cells] == []
