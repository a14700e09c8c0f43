"""MACs of the records only kflow's processes may write (``RecordSigner``), and cloudpickle payloads bound to the
run and field they were written for."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import pickle

import pytest

from engine.runtime import CallArgs, StartWorkflow, StepResult, TimerFired
from schemas import Codec, PayloadError, RecordCodec, RecordSigner, SchemaError, decode_payload, encode_payload

SECRET = b"kflow-test-secret"
SIGNER = RecordSigner(SECRET)
RESULT = StepResult(run_id="r1", position=2, attempt=1, ok=True, result="v", worker="w", started_at=1, finished_at=2)
FIRED = TimerFired(run_id="r1", timer_id="sleep:3:1", position=3, kind="sleep", fire_at=1000, fired_at=1005)


def _key(purpose: bytes) -> bytes:
    return hmac.new(SECRET, b"kflow key derivation v1\x00" + purpose, hashlib.sha256).digest()


# --- RecordSigner ----------------------------------------------------------------------------------


def test_a_step_result_mac_is_hmac_sha256_of_run_position_and_attempt_under_its_own_key() -> None:
    signed = SIGNER.sign(RESULT)
    covered = b"s\x00\x00\x00\x02r1" + b"i" + (2).to_bytes(8, "big") + b"i" + (1).to_bytes(8, "big")
    assert signed.mac == hmac.new(_key(b"record:StepResult"), covered, hashlib.sha256).digest()
    assert SIGNER.check(signed) is None
    assert dataclasses.replace(signed, mac=None) == RESULT  # nothing else changed


def test_a_timer_fired_mac_covers_the_arming_and_not_the_firing_time() -> None:
    signed = SIGNER.sign(FIRED)
    assert SIGNER.check(signed) is None
    assert SIGNER.check(dataclasses.replace(signed, fired_at=99_999)) is None  # a re-fire of the same arming
    for changed in ({"run_id": "r2"}, {"timer_id": "sleep:3:2"}, {"position": 4}, {"kind": "retry"}, {"fire_at": 1}):
        reason = SIGNER.check(dataclasses.replace(signed, **changed))  # type: ignore[arg-type]
        assert reason is not None and "MAC does not verify" in reason, changed


@pytest.mark.parametrize(
    "forged",
    [
        RESULT,  # no MAC at all
        dataclasses.replace(SIGNER.sign(RESULT), position=3),  # a MAC lifted from another step
        dataclasses.replace(SIGNER.sign(RESULT), attempt=2),
        dataclasses.replace(SIGNER.sign(RESULT), run_id="r2"),
        RecordSigner(b"another secret").sign(RESULT),
        dataclasses.replace(RESULT, mac=b"\x00" * 32),
        dataclasses.replace(RESULT, mac=SIGNER.sign(FIRED).mac),  # a TimerFired's key is not a StepResult's
    ],
    ids=["no mac", "other position", "other attempt", "other run", "other secret", "zero mac", "other record type"],
)
def test_a_step_result_not_signed_for_that_attempt_is_refused_with_a_reason(forged: StepResult) -> None:
    reason = SIGNER.check(forged)
    assert reason is not None and reason.startswith(
        f"unauthenticated StepResult for run {forged.run_id} position {forged.position} attempt {forged.attempt}: "
    )
    assert ("carries no MAC" if forged.mac is None else "does not verify") in reason


def test_the_mac_survives_the_wire_and_checks_on_the_avro_fields_too() -> None:
    records = RecordCodec()
    back = records.decode(records.encode(SIGNER.sign(FIRED)))
    assert isinstance(back, TimerFired) and SIGNER.check(back) is None
    fields = Codec().decode(records.encode(SIGNER.sign(RESULT))).record
    assert SIGNER.check_fields("StepResult", fields) is None
    assert SIGNER.check_fields("StepResult", {**fields, "attempt": 7}) is not None


def test_only_step_results_and_timers_are_signed_and_the_secret_must_be_set() -> None:
    with pytest.raises(SchemaError, match="RunFinished records carry no MAC"):
        SIGNER.mac("RunFinished", {"run_id": "r1"})
    with pytest.raises(ValueError, match="non-empty"):
        RecordSigner(b"")
    assert "kflow-test-secret" not in repr(SIGNER)


# --- cloudpickle payloads bound to their record ----------------------------------------------------


def test_a_signed_payload_decodes_only_for_the_run_and_field_it_was_written_for() -> None:
    payload = encode_payload({"x": {1, 2}}, "cloudpickle", SECRET, run_id="r1", field="result")
    assert decode_payload(payload, SECRET, run_id="r1", field="result") == {"x": {1, 2}}
    for run_id, field in (("r2", "result"), ("r1", "args"), ("", "")):
        with pytest.raises(PayloadError, match="copied from another run or field"):
            decode_payload(payload, SECRET, run_id=run_id, field=field)


def test_a_payload_copied_into_another_runs_record_is_refused() -> None:
    records = RecordCodec(payload_codec="cloudpickle", secret=SECRET)
    codec = records.codec
    genuine = codec.decode(records.encode(dataclasses.replace(RESULT, result={"amount": 9.5})))
    assert isinstance(records.decode(codec.encode("StepResult", genuine.record)), StepResult)
    replayed = codec.encode("StepResult", {**genuine.record, "run_id": "r2"})
    with pytest.raises(PayloadError, match="does not verify for result of r2"):
        records.decode(replayed)  # another run's result
    start = codec.decode(
        records.encode(StartWorkflow(run_id="r1", workflow_name="w", args=CallArgs(({1},), {}), requested_at=1))
    )
    moved = {"run_id": "r1", "seq": 2, "timestamp": 1, "position": 0, "context": start.record["args"]}
    with pytest.raises(PayloadError, match="does not verify for context of r1"):
        records.decode(codec.encode("StepContextSet", moved))  # the run's own arguments, moved into another field


def test_a_payload_signed_before_the_binding_is_read_once_more_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pickled = pickle.dumps([1, 2])
    legacy = {"codec": "cloudpickle", "data": hmac.new(SECRET, pickled, hashlib.sha256).digest() + pickled}
    with caplog.at_level(logging.WARNING, logger="schemas"):
        assert decode_payload(legacy, SECRET, run_id="r1", field="result") == [1, 2]
        assert decode_payload(legacy, SECRET, run_id="r2", field="args") == [1, 2]
    warnings = [r for r in caplog.records if "before payloads were bound" in r.getMessage()]
    assert len(warnings) <= 1  # once per process (a test before this one may have triggered it already)
    with pytest.raises(PayloadError, match="does not verify"):
        decode_payload(legacy, b"another secret", run_id="r1", field="result")
