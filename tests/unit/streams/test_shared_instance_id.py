"""Two processes with one ``--instance-id`` fence each other in turn; the orchestrator says so (no server)."""

from __future__ import annotations

import logging

import pytest

from engine import Registry
from streams import Settings
from streams.processors import Orchestrator


async def _churn(settings: Settings, caplog: pytest.LogCaptureFixture) -> list[str]:
    orchestrator = Orchestrator(settings, Registry())
    with caplog.at_level(logging.ERROR, logger="streams.processors._orchestrator"):
        for _ in range(3):  # the group hands partition 2 to this member three times in a row
            orchestrator._assigned(2)
    return [r.getMessage() for r in caplog.records]


async def test_a_partition_assigned_three_times_in_30_s_to_a_static_member_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = await _churn(Settings(instance_id="host-1"), caplog)
    assert len(messages) == 1 and "inbox partition 2 assigned 3 times" in messages[0] and "host-1" in messages[0]


async def test_a_dynamic_member_is_not_suspected(caplog: pytest.LogCaptureFixture) -> None:
    assert await _churn(Settings(), caplog) == []


async def test_the_instance_id_makes_group_consumers_static_members() -> None:
    from streams.kafka import close_consumer, consumer

    static = consumer("127.0.0.1:9", group_id="g", instance_id="host-1")
    plain = consumer("127.0.0.1:9", instance_id="host-1")  # no group: nothing to be a member of
    try:
        assert static._group_instance_id == "host-1" and plain._group_instance_id is None
    finally:
        await close_consumer(static)
        await close_consumer(plain)


def test_the_instance_id_is_checked_where_it_is_read() -> None:
    from engine import ConfigurationError

    assert Settings.from_env({"KFLOW_INSTANCE_ID": "pod-0.kflow"}).instance_id == "pod-0.kflow"
    with pytest.raises(ConfigurationError, match="KFLOW_INSTANCE_ID"):
        Settings.from_env({"KFLOW_INSTANCE_ID": "two words"})
