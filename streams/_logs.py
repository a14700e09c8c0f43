"""Log context and the JSON log format (``--log-format json``, ``KFLOW_LOG_FORMAT``).

``LOG_CONTEXT`` holds what is known about the work in progress (``run_id``, ``workflow``, ``step``, ``partition``):
the orchestrator sets it around each inbox record, the worker around each step attempt (so a step's own log lines
carry them). ``JsonFormatter`` writes one JSON object per line with the time, level, logger and message, those
fields (from ``extra=`` or the context) and the exception, if any.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

LOG_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("kflow_log_context", default=None)
"""The fields of the work in progress (set with ``LOG_CONTEXT.set({...})``, reset with the token)."""

CONTEXT_FIELDS: Final = ("run_id", "workflow", "step", "partition")
"""The fields a JSON log line carries when they are known."""
LOG_FORMATS: Final = ("text", "json")
"""The values of ``--log-format``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the known
    ``CONTEXT_FIELDS`` (a record's ``extra=`` wins over ``LOG_CONTEXT``) and ``exception`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = LOG_CONTEXT.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            value = context.get(name) if value is None else value
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` (a name), as text (``%(asctime)s %(levelname)s %(name)s: %(message)s``) or as
    JSON lines (``JsonFormatter``)."""
    text = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level), format=text)
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
