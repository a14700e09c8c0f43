"""A step attempt's result as it is sent: encoded (signed), or a failed attempt when the result cannot be sent; and
the attributes of its span.

Shared by the step worker and local steps, so a result too large for a record, or one the payload codec cannot
carry, fails the attempt the same way wherever it ran (a retry would return a value of the same kind).
"""

from __future__ import annotations

import dataclasses
import logging

from engine import runtime
from engine.runtime import ErrorInfo, ExecuteStep, StepResult
from schemas import PayloadError, RecordCodec, RecordSigner, SchemaError
from streams import kafka
from streams._record_limit import too_large

log = logging.getLogger(__name__)


def encode_result(
    records: RecordCodec, signer: RecordSigner | None, result: StepResult, step_name: str
) -> tuple[bytes, StepResult]:
    """The result encoded (signed when ``signer``), and the result that is: a failure when it cannot be sent."""

    def sign(unsigned: StepResult) -> StepResult:
        return unsigned if signer is None else signer.sign(unsigned)

    try:
        encoded = records.encode(sign(result))
        if len(encoded) > kafka.MAX_MESSAGE_BYTES:
            then = "return a reference (a key, a URL) to large data instead of the data"
            raise PayloadError(too_large("the result", len(encoded), then))
    except BaseException as exc:  # SchemaError, or user code run by the codec (a __reduce__) raising anything
        if isinstance(exc, GeneratorExit):
            raise
        text = str(exc) if isinstance(exc, SchemaError) else f"encoding it raised {type(exc).__name__}"
        log.warning("step %s returned a result that cannot be sent: %s", step_name, text)
        error = unsendable(exc, f"the result of step {step_name!r} cannot be sent: {text}")
        result = dataclasses.replace(result, ok=False, result=None, error=error, mac=None)  # signed again below
        encoded = records.encode(sign(result))
    return encoded, result


def unsendable(exc: BaseException, message: str) -> ErrorInfo:
    """A non-retryable error for a value the payload codec cannot carry (a retry would fail the same way)."""
    hint = (
        ""
        if "cloudpickle" in message
        else ("; use the cloudpickle payload codec (with KFLOW_SECRET) for arbitrary Python values")
    )
    return ErrorInfo(type=runtime.error_info(exc, with_traceback=False).type, message=message + hint, retryable=False)


def attempt_attributes(cmd: ExecuteStep) -> dict[str, str | int | bool]:
    """The attributes of a step attempt's ``RunStep`` span (on a worker or local)."""
    return {
        "kflow.run_id": cmd.run_id,
        "kflow.workflow": cmd.workflow_name,
        "kflow.step": cmd.step_name,
        "kflow.position": cmd.position,
        "kflow.attempt": cmd.attempt,
    }
