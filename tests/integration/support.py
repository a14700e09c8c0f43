"""Helpers shared by the integration tests (imported as ``from support import ...``)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call (and await, if it is a coroutine) ``check()`` until it returns a truthy value, and return that.

    ``check`` may also assert: an ``AssertionError`` counts as "not yet". After ``timeout`` seconds the last
    value or error is reported in an ``AssertionError`` naming ``what`` (a string, or a callable giving one
    then — e.g. a log file's text). Every wait of the integration tests goes through here: polling with a
    deadline, never a sleep followed by an assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        error: AssertionError | None = None
        try:
            outcome = check()
            value = await outcome if inspect.isawaitable(outcome) else outcome
        except AssertionError as failed:
            error, last = failed, f"AssertionError: {failed}"
        else:
            if value:
                return value  # type: ignore[return-value]
            last = repr(value)
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g}s waiting for {described}; last: {last}") from error
        await asyncio.sleep(interval)


async def holds_for(
    check: Callable[[], object | Awaitable[object]],
    seconds: float,
    *,
    interval: float = 0.1,
    what: str | Callable[[], str] = "the condition",
) -> None:
    """Assert that ``check()`` stays truthy (and does not raise) for ``seconds`` — checked every ``interval``.

    For what must *not* happen during a stretch of time (no fire while paused): it fails at the first
    check that does not hold, rather than sleeping the whole stretch and looking once at the end.
    """
    deadline = time.monotonic() + seconds
    while True:
        outcome = check()
        value = await outcome if inspect.isawaitable(outcome) else outcome
        assert value, f"{what() if callable(what) else what} stopped holding: {value!r}"
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
