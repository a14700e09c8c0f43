"""A refused hook payload raises a HookDeliveryError that is also pyworkflow-engine's error for the case, from
the reasons the orchestrator really writes (no network); SettingsError is a ConfigurationError."""

from __future__ import annotations

import pytest
from partition_samples import RECORDS, logic, reason, result, resume, start, topics

from engine import (
    ConfigurationError,
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    InvalidTokenError,
    KflowError,
)
from streams import Client, HookDeliveryError, Settings
from streams.cli import build_parser
from streams.client import HookAnswerMatcher


def refusal(part_outputs: list, sent: bytes, offset: int) -> HookDeliveryError:  # type: ignore[type-arg]
    """What the client raises for the dead letter the partition logic wrote for ``sent`` (at ``offset``)."""
    assert topics(part_outputs) == ["dlq"], reason(part_outputs[0])
    letter = part_outputs[0]
    answer = HookAnswerMatcher(RECORDS, sent, "p.inbox", offset).dead_letter(letter.key, letter.value)
    assert answer is not None and answer.outcome == "refused"
    return HookDeliveryError.refused("tok", answer.reason)


def test_the_partition_logic_refusals_map_to_pyworkflow_errors() -> None:
    part = logic()
    part.process(b"r1", start("r1"), 0, 10)
    foreign = resume("r1", "other:approval")
    error = refusal(part.process(b"r1", foreign, 1, 11), foreign, 1)
    assert isinstance(error, InvalidTokenError) and isinstance(error, HookDeliveryError)
    numbered = resume("r1", "r1:approval#x")
    assert isinstance(refusal(part.process(b"r1", numbered, 2, 12), numbered, 2), InvalidTokenError)
    first = resume("r1", "r1:approval", {"ok": True})
    assert topics(part.process(b"r1", first, 3, 13)) == ["history"]  # queued for the hook() call
    again = resume("r1", "r1:approval", {"ok": False})
    error = refusal(part.process(b"r1", again, 4, 14), again, 4)
    assert isinstance(error, HookAlreadyReceivedError) and not isinstance(error, HookNotFoundError)
    part.process(b"r1", result("r1", 0, "v"), 5, 15)
    part.process(b"r1", result("r1", 1, "v"), 6, 16)
    late = resume("r1", "r1:later")
    error = refusal(part.process(b"r1", late, 7, 17), late, 7)
    assert isinstance(error, HookNotFoundError) and "run r1 is completed" in error.reason
    unknown = resume("r9", "r9:approval")
    error = refusal(part.process(b"r9", unknown, 8, 18), unknown, 8)
    assert isinstance(error, HookNotFoundError) and error.token == "tok"


@pytest.mark.parametrize(
    ("reason_text", "expected"),
    [
        ("hook token 'r1:a' has expired: a token takes one payload", HookExpiredError),
        (
            "hook token 'r1:a' is no longer awaited (the run cancelled that wait): a token takes one payload",
            HookNotFoundError,
        ),
        ("run r1 was compacted (kflow compact): its state was dropped", HookNotFoundError),
    ],
)
def test_engine_reasons_without_a_partition_sample(reason_text: str, expected: type[KflowError]) -> None:
    error = HookDeliveryError.refused("r1:a", reason_text)
    assert isinstance(error, expected) and isinstance(error, HookDeliveryError)
    assert str(error) == f"hook payload for r1:a not delivered: {reason_text}"


def test_a_schema_rejection_stays_a_plain_delivery_error() -> None:
    error = HookDeliveryError.refused("r1:a", "payload for token 'r1:a' rejected by its schema: 1 validation error")
    assert type(error) is HookDeliveryError


async def test_a_malformed_token_is_an_invalid_token_error_before_sending() -> None:
    client = Client("127.0.0.1:1")  # nothing listens there: a send would fail differently
    with pytest.raises(InvalidTokenError, match="not of the form") as info:
        await client.resume_hook("no-colon", {"ok": True})
    assert isinstance(info.value, HookDeliveryError)


def test_bad_settings_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"KFLOW_PARTITIONS": "zero"})
    assert isinstance(info.value, ValueError)


def test_the_event_warning_interval_is_a_setting() -> None:
    assert Settings.from_env({}).event_warning_interval == 100
    assert Settings.from_env({"KFLOW_EVENT_WARNING_INTERVAL": "7"}).event_warning_interval == 7
    with pytest.raises(ConfigurationError, match="KFLOW_EVENT_WARNING_INTERVAL"):
        Settings.from_env({"KFLOW_EVENT_WARNING_INTERVAL": "0"})
    assert "  KFLOW_EVENT_WARNING_INTERVAL " in (build_parser().epilog or "")
