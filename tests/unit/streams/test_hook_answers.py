"""Recognising the orchestrator's answer to a hook payload, and how the client and CLI report it (no network)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.runtime import HookCreated, HookReceived, ResumeHook
from schemas import RecordCodec
from streams import Client, HookDeliveryError
from streams.cli import describe_hook_outcome
from streams.client import HookAnswer, HookAnswerMatcher
from streams.processors import dead_letter

RECORDS = RecordCodec()
RUN = "r1"
TOKEN = f"{RUN}:approval"
INBOX = "p.inbox"
SENT = RECORDS.encode(ResumeHook(run_id=RUN, token=TOKEN, payload={"ok": True, "n": [1, 2.5]}, requested_at=7))


def matcher(records: RecordCodec = RECORDS, offset: int = 41) -> HookAnswerMatcher:
    return HookAnswerMatcher(records, SENT, INBOX, offset)


def received(position: int, token: str = TOKEN, payload: object = None, records: RecordCodec = RECORDS) -> bytes:
    payload = {"ok": True, "n": [1, 2.5]} if payload is None else payload
    return records.encode(HookReceived(run_id=RUN, seq=3, timestamp=9, position=position, token=token, payload=payload))


def parked(
    value: bytes = SENT, offset: int = 41, reason: str = "no run r1 on this partition", topic: str = INBOX
) -> bytes:
    return dead_letter(
        RECORDS.codec,
        topic=topic,
        partition=1,
        offset=offset,
        key=RUN.encode(),
        value=value,
        reason=reason,
        error_type="kflow.InvalidRecord",
    ).value


def test_a_hook_received_at_a_position_is_delivered_and_at_minus_one_queued() -> None:
    assert matcher().history(RUN.encode(), received(4)) == HookAnswer("delivered")
    assert matcher().history(RUN.encode(), received(0)) == HookAnswer("delivered")
    assert matcher().history(RUN.encode(), received(-1)) == HookAnswer("queued")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"r2", received(4)),  # another run
        (RUN.encode(), received(4, token=f"{RUN}:other")),  # another hook
        (RUN.encode(), received(4, payload={"ok": False})),  # another payload
        (
            RUN.encode(),
            RECORDS.encode(HookCreated(run_id=RUN, seq=2, timestamp=1, position=4, name="approval", token=TOKEN)),
        ),
        (RUN.encode(), b"not a record"),
        (None, received(4)),
    ],
)
def test_other_history_records_are_not_the_answer(key: bytes | None, value: bytes) -> None:
    assert matcher().history(key, value) is None


def test_a_payload_the_orchestrator_re_encoded_with_another_codec_still_matches() -> None:
    pickling = RecordCodec(payload_codec="cloudpickle", secret=b"s")
    assert matcher(RecordCodec(secret=b"s")).history(RUN.encode(), received(-1, records=pickling)) == HookAnswer(
        "queued"
    )


def test_the_dead_letter_of_the_sent_record_is_a_refusal_with_its_reason() -> None:
    assert matcher().dead_letter(RUN.encode(), parked()) == HookAnswer("refused", "no run r1 on this partition")


@pytest.mark.parametrize(
    "reason",
    [
        "hook payload for token 'r1:approval' not delivered: run r1 is completed",
        "hook payload not delivered: run r1 is completed",
    ],
)
def test_a_reason_restating_the_error_message_is_trimmed(reason: str) -> None:
    assert matcher().dead_letter(RUN.encode(), parked(reason=reason)) == HookAnswer("refused", "run r1 is completed")


@pytest.mark.parametrize(
    "value",
    [
        parked(value=SENT + b"x"),  # another record's bytes
        parked(offset=40),  # the same bytes sent earlier: another record
        parked(topic="q.inbox"),
        received(4),
    ],
)
def test_other_dead_letters_are_not_the_answer(value: bytes) -> None:
    assert matcher().dead_letter(RUN.encode(), value) is None


def test_the_delivery_error_names_the_token_and_the_reason() -> None:
    error = HookDeliveryError.refused(TOKEN, "run r1 is completed")
    assert str(error) == "hook payload for r1:approval not delivered: run r1 is completed"
    assert (error.token, error.reason, error.retryable) == (TOKEN, "run r1 is completed", False)
    assert str(HookDeliveryError(str(error))) == str(error)  # rebuildable from its message alone


@pytest.mark.parametrize("token", ["no-colon", ":approval", ""])
async def test_a_malformed_token_is_refused_before_anything_is_sent(token: str) -> None:
    client = Client("127.0.0.1:1")  # nothing listens there: a send would fail differently
    with pytest.raises(HookDeliveryError, match="<run_id>:<name>") as refused:
        await client.resume_hook(token, {"ok": True})
    assert refused.value.token == token


def test_the_cli_describes_each_outcome() -> None:
    assert describe_hook_outcome("delivered", TOKEN) == "delivered"
    assert describe_hook_outcome("queued", TOKEN) == (
        "queued (no hook is waiting on r1:approval yet; it is delivered when the workflow reaches it)"
    )
    assert describe_hook_outcome("sent", TOKEN).startswith("sent (")


def test_the_cli_reports_a_malformed_token_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "hooks", "resume", "no-colon", "{}"],
        capture_output=True,
        text=True,
        env={**os.environ, "KFLOW_BOOTSTRAP": "127.0.0.1:1"},
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "kflow: error: hook payload for no-colon not delivered: hook token 'no-colon' is not of "
        "the form '<run_id>:<name>'\n"
    )
