"""Activating declared schedules: create when missing, update when different, nothing when equal (no network)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from engine import OverlapPolicy, ScheduleError, ScheduleSpec
from engine.runtime import CallArgs, DeclaredSchedule, ScheduleState
from engine.testing import FakeClock
from schemas import RecordCodec
from streams import Settings
from streams.client import ScheduleActivation, Schedules, is_declared, spec_text

DECLARED = DeclaredSchedule(
    schedule_id="nightly",
    workflow_name="report",
    spec=ScheduleSpec(cron="0 2 * * *", timezone="Europe/Paris", jitter="5m"),
    overlap=OverlapPolicy.BUFFER_ONE,
    args=CallArgs((["eu", 1], ("x",)), {"full": True}),
)


def stored(declared: DeclaredSchedule = DECLARED, **changes: object) -> ScheduleState:
    """The state the orchestrator keeps for ``declared``: its arguments as they come back from JSON."""
    state = ScheduleState(
        schedule_id=declared.schedule_id,
        workflow_name=declared.workflow_name,
        args=CallArgs((["eu", 1], ["x"]), {"full": True}),
        spec=spec_text(declared.spec),
        overlap=declared.overlap.value,
        paused=False,
        created_at=1,
        updated_at=2,
        generation=1,
    )
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]


def test_a_schedule_as_stored_is_what_its_declaration_says() -> None:
    assert is_declared(stored(), DECLARED)  # tuples came back as lists: still equal
    assert is_declared(stored(paused=True, note="ops", fires=9), DECLARED)  # operator and runtime state: ignored
    assert is_declared(
        stored(spec='{"cron": "0 2 * * *", "timezone": "Europe/Paris", "jitter_ms": 300000}'), DECLARED
    )  # keys left out take their defaults


@pytest.mark.parametrize(
    "changes",
    [
        {"workflow_name": "other"},
        {"overlap": "skip"},
        {"spec": spec_text(ScheduleSpec(cron="0 3 * * *", timezone="Europe/Paris", jitter="5m"))},
        {"spec": spec_text(ScheduleSpec(cron="0 2 * * *", jitter="5m"))},
        {"spec": "not json"},
        {"args": CallArgs((["eu", 1], ["x"]), {})},
        {"args": CallArgs((["eu", 1],), {"full": True})},
    ],
)
def test_any_declared_field_that_differs_is_a_difference(changes: dict[str, object]) -> None:
    assert not is_declared(stored(**changes), DECLARED)


class Recording(Schedules):
    """Schedule operations against a dict of states instead of Kafka (the command answers are the new states)."""

    def __init__(self, states: dict[str, ScheduleState], refuse_create: bool = False) -> None:
        async def no_producer() -> AIOKafkaProducer:
            raise AssertionError("no Kafka in this test")

        super().__init__(Settings(), RecordCodec(), None, no_producer, FakeClock())
        self.states, self.refuse_create, self.sent = states, refuse_create, list[str]()

    async def get(self, schedule_id: str) -> ScheduleState | None:
        return self.states.get(schedule_id)

    async def _create(
        self,
        schedule_id: str,
        workflow_name: str,
        spec: ScheduleSpec,
        args: CallArgs,
        *,
        overlap: OverlapPolicy | str,
        note: str | None,
        wait: bool = True,
        timeout: float,
    ) -> ScheduleState | None:
        self.sent.append("create")
        if self.refuse_create:  # another activation created it just before
            self.states[schedule_id] = stored(overlap="skip")
            raise ScheduleError(f"schedule {schedule_id!r} exists already")
        self.states[schedule_id] = stored()
        return self.states[schedule_id]

    async def update(
        self,
        schedule_id: str,
        *,
        workflow: object = None,
        spec: ScheduleSpec | None = None,
        args: tuple[object, ...] | None = None,
        kwargs: dict[str, object] | None = None,
        overlap: OverlapPolicy | str | None = None,
        note: str | None = None,
        wait: bool = True,
        timeout: float = 30.0,
    ) -> ScheduleState | None:
        self.sent.append("update")
        assert (workflow, spec, CallArgs(tuple(args or ()), dict(kwargs or {})), overlap, note) == (
            "report",
            DECLARED.spec,
            DECLARED.args,
            OverlapPolicy.BUFFER_ONE,
            None,
        )
        self.states[schedule_id] = stored(generation=2)
        return self.states[schedule_id]


async def test_activation_creates_then_leaves_alone_then_updates() -> None:
    ops = Recording({})
    created = await ops.activate_declared(DECLARED, timeout=1)
    assert created == ScheduleActivation("nightly", "created", stored())
    assert (await ops.activate_declared(DECLARED, timeout=1)).outcome == "unchanged"
    ops.states["nightly"] = stored(overlap="allow_all", paused=True)  # changed by hand
    updated = await ops.activate_declared(DECLARED, timeout=1)
    assert (updated.outcome, updated.state.generation) == ("updated", 2)
    assert ops.sent == ["create", "update"]


async def test_a_create_refused_because_another_activation_created_it_falls_back_to_an_update() -> None:
    ops = Recording({}, refuse_create=True)
    assert (await ops.activate_declared(DECLARED, timeout=1)).outcome == "updated"
    assert ops.sent == ["create", "update"]


async def test_a_create_refused_for_another_reason_is_raised() -> None:
    class Refusing(Recording):
        async def _create(self, *args: object, **kwargs: object) -> ScheduleState | None:  # type: ignore[override]
            raise ScheduleError("unknown workflow 'report'")

    with pytest.raises(ScheduleError, match="unknown workflow"):
        await Refusing({}).activate_declared(DECLARED, timeout=1)


# --- kflow schedules activate: what fails before the broker is reached ------------------------------------


def kflow_activate(tmp_path: Path, module: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KFLOW_BOOTSTRAP": "127.0.0.1:1", "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "schedules", "activate", "-A", module],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            "from engine import workflow\n@workflow\nasync def by_hand(): return None\n",
            "kflow: error: -A kfact_app declares no schedules (decorate its workflows with @scheduled_workflow)",
        ),
        (
            "from engine import scheduled_workflow\n"
            "@scheduled_workflow(cron='0 25 * * *')\n"
            "async def late(): return None\n",
            "kflow: error: -A kfact_app: @scheduled_workflow on kfact_app.late: "
            "cron '0 25 * * *': hour field '25': value 25 is out of range 0-23",
        ),
        (
            "from engine import scheduled_workflow\n"
            "@scheduled_workflow(interval='1h')\n"
            "async def hourly(): return None\n",
            "kflow: error: Kafka at 127.0.0.1:1 is unreachable (checking topic kflow.schemas): ",
        ),
    ],
)
def test_activate_reports_one_line(tmp_path: Path, body: str, says: str) -> None:
    (tmp_path / "kfact_app.py").write_text(body)
    done = kflow_activate(tmp_path, "kfact_app")
    assert done.returncode == (4 if "unreachable" in says else 1), done.stderr  # 4: Kafka unreachable
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.startswith(says), done.stderr
