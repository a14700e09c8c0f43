"""The client refuses, before sending anything, arguments and hook payloads the payload codec cannot carry, naming
the path and the type; its allow-list is the registered payload classes plus its registry's modules (no network:
nothing listens at the bootstrap address, a send would fail differently)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from engine import Registry, ScheduleSpec, workflow
from engine.runtime import CallArgs, StartWorkflow
from schemas import PayloadError
from streams import Client


@dataclasses.dataclass(frozen=True)
class Window:  # defined in the workflow's module, not registered: allowed only with Client(registry=...)
    opens: datetime.time
    closes: datetime.time


@workflow
async def deliver(window: Window) -> None: ...


def _client(registry: Registry | None = None) -> Client:
    return Client("127.0.0.1:1", registry=registry)


async def test_start_refuses_arguments_naming_the_path_and_type() -> None:
    with pytest.raises(PayloadError, match=r'^\$\.kwargs\["when"\]\[1\]: object cannot be encoded'):
        await _client().start("deliver", 1, when=(2, object()))
    with pytest.raises(PayloadError, match=r"^\$\.args\[0\]: function cannot be encoded"):
        await _client().start("deliver", lambda: 1)


async def test_resume_hook_refuses_a_payload_naming_the_path_and_type() -> None:
    with pytest.raises(PayloadError, match=r'^\$\.payload\["ok"\]: object cannot be encoded'):
        await _client().resume_hook("run:approval", {"ok": object()})


async def test_schedules_refuse_arguments_before_sending() -> None:
    client = _client(Registry([deliver]))
    with pytest.raises(PayloadError, match=r"^\$\.args\[0\]: object cannot be encoded"):
        await client.schedules.create("s", "deliver", ScheduleSpec(interval="1h"), object())


async def test_a_class_of_the_workflow_module_needs_the_registry_on_the_client() -> None:
    window = Window(datetime.time(8), datetime.time(12))
    with pytest.raises(PayloadError, match=r"^\$\.args\[0\]: .*:Window is not an allowed payload class.*registry"):
        await _client().start("deliver", window)
    records = _client(Registry([deliver])).records  # what start and result encode and decode with
    start = StartWorkflow(run_id="r", workflow_name="deliver", args=CallArgs((window,), {}), requested_at=1)
    decoded = records.decode(records.encode(start))
    assert isinstance(decoded, StartWorkflow) and decoded.args.args == (window,)
    assert type(decoded.args.args[0]) is Window
