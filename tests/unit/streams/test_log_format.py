"""``--log-format json``: the JSON formatter, the log context, the options and their variables (no servers)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from streams import LOG_CONTEXT, JsonFormatter, Settings
from streams.cli import build_parser


def emit(logger: logging.Logger, *args: object, **kwargs: object) -> dict[str, object]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # one object per line
    parsed: dict[str, object] = json.loads(lines[0])
    return parsed


def test_a_line_has_time_level_logger_and_message_and_nothing_unknown() -> None:
    line = emit(logging.getLogger("kflow.test.plain"), "adopted %d partitions", 2)
    assert line.keys() == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "kflow.test.plain", "adopted 2 partitions")
    assert str(line["time"]).endswith("+00:00")


def test_the_log_context_adds_run_id_workflow_step_and_partition_and_extra_wins() -> None:
    token = LOG_CONTEXT.set({"run_id": "r1", "workflow": "order", "step": "charge", "partition": 3})
    try:
        line = emit(logging.getLogger("kflow.test.context"), "charging", extra={"step": "refund"})
    finally:
        LOG_CONTEXT.reset(token)
    assert (line["run_id"], line["workflow"], line["step"], line["partition"]) == ("r1", "order", "refund", 3)
    assert "run_id" not in emit(logging.getLogger("kflow.test.context"), "after the run")


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = emit(logging.getLogger("kflow.test.exc"), "failed", exc_info=True)
    assert "ValueError: boom" in str(line["exception"])


@pytest.mark.parametrize("command", ["processor", "worker", "materializer"])
def test_every_long_running_command_takes_log_format_and_metrics_port(command: str) -> None:
    app = ["-A", "examples.basic"] if command != "materializer" else []
    args = build_parser().parse_args([command, *app, "--log-format", "json", "--metrics-port", "9464"])
    assert (args.log_format, args.metrics_port) == ("json", 9464)
    default = build_parser().parse_args([command, *app])
    assert (default.log_format, default.metrics_port) == (None, None)  # then the settings decide: text, no server


def test_the_variables_set_the_defaults() -> None:
    assert (Settings().log_format, Settings().metrics_port) == ("text", None)
    settings = Settings.from_env({"KFLOW_LOG_FORMAT": "json", "KFLOW_METRICS_PORT": "9464"})
    assert (settings.log_format, settings.metrics_port) == ("json", 9464)
    with pytest.raises(ValueError, match="KFLOW_LOG_FORMAT"):
        Settings.from_env({"KFLOW_LOG_FORMAT": "xml"})
