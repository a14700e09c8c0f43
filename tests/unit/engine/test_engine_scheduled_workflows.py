"""``@scheduled_workflow``: a workflow plus a declared schedule, validated when decorating, listed by the Registry."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import (
    CalendarSpec,
    DuplicateNameError,
    EventLimits,
    InvalidDurationError,
    OverlapPolicy,
    Registry,
    RegistryError,
    ScheduleError,
    ScheduleSpec,
    ScheduleSpecError,
    StepContext,
    scheduled_workflow,
    step,
    workflow,
)
from engine.runtime import CallArgs, DeclaredSchedule, declared_schedule, workflow_definition
from engine.testing import FakeClock, InMemoryDriver


@step
async def measure(region: str) -> str:
    return f"{region}: all green"


@scheduled_workflow(cron="0 9 * * *")
async def daily_report() -> str:
    return await measure("eu")


class ReportContext(StepContext):
    region: str = "eu"


LIMITS = EventLimits(soft=10, hard=20)


@scheduled_workflow(
    interval="5m",
    overlap_policy="buffer_one",
    schedule_id="sync-every-5m",
    args=["eu"],
    kwargs={"full": True},
    jitter="30s",
    start_at=datetime(2030, 1, 1, tzinfo=UTC),
    catchup_window="10m",
    name="sync",
    max_duration="1h",
    tags=["ops"],
    durable=False,
    context_class=ReportContext,
    event_limits=LIMITS,
)
async def sync_data(region: str, full: bool = False) -> str:
    return await measure(region) + (" (full)" if full else "")


@workflow
async def plain() -> None:
    return None


def test_decoration_registers_a_workflow_and_declares_its_schedule() -> None:
    defn = workflow_definition(daily_report)
    assert defn is not None and defn.name == "daily_report"
    assert defn.fn is daily_report  # returned as is, as @workflow returns it
    assert inspect.iscoroutinefunction(daily_report) and daily_report.__name__ == "daily_report"
    declared = declared_schedule(daily_report)
    assert declared == DeclaredSchedule(
        schedule_id="daily_report",
        workflow_name="daily_report",
        spec=ScheduleSpec(cron="0 9 * * *"),
        overlap=OverlapPolicy.SKIP,
        args=CallArgs((), {}),
    )


def test_the_workflow_definition_is_the_one_workflow_would_make() -> None:
    async def body() -> None:
        return None

    options = dict(
        name="named", max_duration="2h", tags=["a"], durable=False, context_class=ReportContext, event_limits=LIMITS
    )
    as_workflow = workflow_definition(workflow(**options)(body))
    scheduled = workflow_definition(scheduled_workflow(interval="1h", **options)(body))
    assert scheduled == as_workflow


def test_scheduled_workflow_takes_every_option_of_workflow() -> None:
    workflow_options = {name for name, p in inspect.signature(workflow).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert workflow_options <= set(inspect.signature(scheduled_workflow).parameters)


def test_defaults_and_options_are_normalised() -> None:
    declared = declared_schedule(sync_data)
    assert declared is not None
    assert (declared.schedule_id, declared.workflow_name, declared.overlap) == (
        "sync-every-5m",
        "sync",
        OverlapPolicy.BUFFER_ONE,
    )
    assert declared.args == CallArgs(("eu",), {"full": True})
    assert declared.spec == ScheduleSpec(
        interval=timedelta(minutes=5), jitter="30s", start_at=1_893_456_000_000, catchup_window=600
    )
    defn = workflow_definition(sync_data)
    assert defn is not None
    assert (defn.name, defn.max_duration_ms, defn.tags, defn.durable, defn.context_class, defn.event_limits) == (
        "sync",
        3_600_000,
        ("ops",),
        False,
        ReportContext,
        LIMITS,
    )


def test_the_default_schedule_id_is_the_workflow_name() -> None:
    @scheduled_workflow(calendar=[CalendarSpec(day_of_month=1, hour=6)], timezone="Europe/Paris", name="monthly")
    async def first_of_the_month() -> None:
        return None

    declared = declared_schedule(first_of_the_month)
    assert declared is not None and declared.schedule_id == declared.workflow_name == "monthly"
    assert declared.spec.calendar == (CalendarSpec(day_of_month=1, hour=6),)
    assert declared.spec.timezone == "Europe/Paris"


async def test_it_runs_like_any_workflow() -> None:
    assert await sync_data("us", full=True) == "us: all green (full)"  # outside a workflow: just the function
    driver = InMemoryDriver(Registry([daily_report, measure]), FakeClock())
    run_id = driver.start(daily_report)
    await driver.run_until_idle()
    assert driver.result(run_id) == "eu: all green"


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"cron": "61 * * * *"}, ScheduleSpecError, "minute field '61': value 61 is out of range"),
        ({}, ScheduleSpecError, "needs exactly one of cron, interval, calendar; got none"),
        ({"cron": "@daily", "interval": "1h"}, ScheduleSpecError, "got cron, interval"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, ScheduleSpecError, "'Mars/Olympus' is not a known IANA"),
        ({"interval": "1500ms"}, ScheduleSpecError, "whole number of seconds"),
        ({"cron": "@daily", "start_at": datetime(2030, 1, 1)}, ScheduleSpecError, "naive datetime"),
        ({"cron": "@daily", "overlap_policy": "sometimes"}, ScheduleError, "unknown overlap policy 'sometimes'"),
        ({"cron": "@daily", "schedule_id": ""}, ScheduleError, "schedule_id must be a non-empty string"),
        ({"cron": "@daily", "args": "eu"}, ScheduleError, "args must be a list or tuple"),
        ({"cron": "@daily", "kwargs": {1: "x"}}, ScheduleError, "kwargs must be a mapping with string keys"),
    ],
)
def test_a_bad_declaration_fails_when_decorating_and_names_the_function(
    options: dict[str, object], error: type[Exception], says: str
) -> None:
    decorate = scheduled_workflow(**options)
    with pytest.raises(error, match=f"@scheduled_workflow on {__name__}.*nightly: .*{says}"):

        @decorate
        async def nightly() -> None:
            return None


def test_bad_workflow_options_fail_as_for_workflow() -> None:
    with pytest.raises(InvalidDurationError):

        @scheduled_workflow(cron="@daily", max_duration="forever")
        async def nightly() -> None:
            return None


def test_the_registry_lists_declared_schedules_by_id() -> None:
    registry = Registry([daily_report, sync_data, plain, measure, daily_report])
    assert list(registry.schedules) == ["daily_report", "sync-every-5m"]
    assert registry.schedules["sync-every-5m"] == declared_schedule(sync_data)
    assert sorted(registry.workflows) == ["daily_report", "plain", "sync"]
    assert Registry([plain]).schedules == {}


def test_two_functions_declaring_one_schedule_id_clash() -> None:
    @scheduled_workflow(cron="0 10 * * *", schedule_id="daily_report")
    async def impostor() -> None:
        return None

    with pytest.raises(DuplicateNameError, match="two different schedules are declared with id 'daily_report'"):
        Registry([daily_report, impostor])


def test_a_schedule_whose_workflow_was_renamed_afterwards_is_refused() -> None:
    @scheduled_workflow(cron="0 10 * * *")
    async def original() -> None:
        return None

    renamed = workflow(name="renamed")(original)
    with pytest.raises(RegistryError, match=r"schedule 'original' starts workflow 'original'.*'renamed'"):
        Registry([renamed])


def test_declarations_are_collected_from_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "kfsched_flows.py").write_text(
        textwrap.dedent("""
        from engine import OverlapPolicy, scheduled_workflow, workflow
        @scheduled_workflow(cron="0 9 * * *", timezone="America/New_York", overlap_policy=OverlapPolicy.SKIP)
        async def daily_report(): return None
        @workflow
        async def by_hand(): return None
    """)
    )
    registry = Registry.from_module("kfsched_flows")
    assert sorted(registry.workflows) == ["by_hand", "daily_report"]
    declared = registry.schedules["daily_report"]
    assert dataclasses.astuple(declared)[:2] == ("daily_report", "daily_report")
    assert declared.spec.timezone == "America/New_York"
