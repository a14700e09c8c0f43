"""Exceptions <-> ErrorInfo: capture on the worker, rebuild in the workflow."""

from __future__ import annotations

import sys
import traceback
from datetime import timedelta

from ._durations import parse_duration
from ._errors import FatalError, InvalidDurationError, RetryableError, StepFailedError
from ._records import ErrorInfo


def error_info(exc: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
    """Describe ``exc`` as an ``ErrorInfo``.

    ``retryable`` comes from the class attribute ``retryable`` when present (kflow errors,
    ``FatalError`` is False); any other exception is retryable. ``RetryableError.retry_after``
    becomes ``retry_after_ms``.
    """
    cls = type(exc)
    return ErrorInfo(
        type=qualified_name(cls),
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)) if with_traceback else None,
        retryable=_retryable(exc),
        retry_after_ms=_retry_after_ms(exc),
    )


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
        except Exception:
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
    flag = getattr(type(exc), "retryable", True)
    return flag if isinstance(flag, bool) else True


def _retry_after_ms(exc: BaseException) -> int | None:
    if not isinstance(exc, RetryableError) or exc.retry_after is None:
        return None
    value: str | int | float | timedelta = exc.retry_after
    try:
        return parse_duration(value)
    except InvalidDurationError:
        return None
