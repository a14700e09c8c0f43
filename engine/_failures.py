"""Exceptions <-> ErrorInfo: capture on the worker, rebuild in the workflow."""

from __future__ import annotations

import sys
import traceback
from datetime import datetime

from ._durations import datetime_to_ms, parse_duration
from ._errors import FatalError, RetryableError, StepFailedError
from ._records import ErrorInfo

MAX_ERROR_TEXT = 32_768
"""Most characters of an ``ErrorInfo`` message, and of its traceback (what is beyond is cut, and says so)."""


def error_info(exc: BaseException, *, with_traceback: bool = True, now_ms: int | None = None) -> ErrorInfo:
    """Describe ``exc`` as an ``ErrorInfo``; never raises.

    ``retryable`` comes from the class attribute ``retryable`` when present (kflow errors,
    ``FatalError`` is False); any other exception is retryable. ``RetryableError.retry_after``
    becomes ``retry_after_ms``: a delay as it is, a ``datetime`` (naive = UTC) as the time from
    ``now_ms`` (the end of the failed attempt) to it, 0 when it is past (None without ``now_ms``).
    An exception whose ``str()`` raises gets the message
    ``"<unprintable T: str() raised E>"``; a traceback that cannot be formatted a similar note.
    Message and traceback are always encodable as UTF-8 (lone surrogates are escaped), and at most
    ``MAX_ERROR_TEXT`` characters each (a longer message keeps its start, a longer traceback its end), so an
    error always fits in a record.
    """
    cls = type(exc)
    trace = _format_traceback(exc) if with_traceback else None
    if trace is not None and len(trace) > MAX_ERROR_TEXT:
        trace = f"… ({len(trace) - MAX_ERROR_TEXT:,} characters cut)\n{trace[-MAX_ERROR_TEXT:]}"
    message = safe_str(exc)
    if len(message) > MAX_ERROR_TEXT:
        message = f"{message[:MAX_ERROR_TEXT]} … ({len(message) - MAX_ERROR_TEXT:,} characters cut)"
    return ErrorInfo(
        type=qualified_name(cls),
        message=message,
        traceback=trace,
        retryable=_retryable(exc),
        retry_after_ms=_retry_after_ms(exc, now_ms),
    )


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or ``"<unprintable T: str() raised E>"`` when that raises."""
    try:
        text = str(exc)
    except BaseException as failure:  # user code: it may raise anything, even SystemExit
        return f"<unprintable {type(exc).__name__}: str() raised {type(failure).__name__}>"
    return _utf8(text)


def describe(exc: BaseException, limit: int = 300) -> str:
    """``repr(exc)`` for messages: never raises, at most ``limit`` characters."""
    try:
        text = repr(exc)
    except BaseException as failure:  # user code: it may raise anything, even SystemExit
        text = f"<unprintable {type(exc).__name__}: repr() raised {type(failure).__name__}>"
    text = _utf8(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_traceback(exc: BaseException) -> str:
    try:
        return _utf8("".join(traceback.format_exception(exc)))
    except BaseException as failure:  # an exception (or one in its chain) that breaks the formatter
        return f"<traceback unavailable: formatting it raised {type(failure).__name__}>\n"


def _utf8(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) escaped, so the record can be sent."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class, as written to ``ErrorInfo.type``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def rebuild_exception(info: ErrorInfo) -> Exception:
    """The exception a workflow sees for ``info``.

    The original type is rebuilt when ``info.type`` names an Exception subclass in a module
    that is already imported (never imports anything: that would run code chosen by a
    record) and the class can be built from the message alone; otherwise ``StepFailedError``.
    """
    cls = _resolve_class(info.type)
    if cls is not None:
        try:
            exc = cls(info.message)
        except BaseException:  # the class's own __init__ (user code) refused: fall back
            exc = None
        if exc is not None:
            return exc
    return StepFailedError(f"{info.type}: {info.message}", info.type, info.traceback)


def _resolve_class(name: str) -> type[Exception] | None:
    module_name, _, qualname = name.rpartition(".")
    # A nested qualname ("mod.Outer.Inner") needs the longest prefix that is a module.
    while module_name:
        module = sys.modules.get(module_name)
        if module is not None:
            return _walk(module, qualname)
        module_name, _, head = module_name.rpartition(".")
        qualname = f"{head}.{qualname}"
    return None


def _walk(obj: object, qualname: str) -> type[Exception] | None:
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, FatalError):
        return False
    try:
        flag = getattr(type(exc), "retryable", True)
    except BaseException:  # a class attribute computed by user code
        return True
    return flag if isinstance(flag, bool) else True


def _retry_after_ms(exc: BaseException, now_ms: int | None) -> int | None:
    if not isinstance(exc, RetryableError):
        return None
    try:
        value: object = exc.retry_after
        if value is None:
            return None
        if isinstance(value, datetime):
            return None if now_ms is None else max(0, datetime_to_ms(value) - now_ms)
        return parse_duration(value)  # type: ignore[arg-type]  # anything else: InvalidDurationError
    except Exception:  # InvalidDurationError, or a value (a subclass's property) that breaks on the way
        return None
