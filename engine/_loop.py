"""A deterministic, synchronous asyncio event loop, one per workflow run.

Workflow code runs on this loop, so ``asyncio.gather`` and ``asyncio.create_task`` work,
while timers and I/O raise ``WorkflowSandboxError``. The loop never blocks: an activation
runs ready callbacks until none remain (or its callback budget runs out), then control returns to the host.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from asyncio import events
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._errors import WorkflowSandboxError

if TYPE_CHECKING:
    from ._core import RunCore

T = TypeVar("T")

_USE_KFLOW_SLEEP = (
    "{what} is not available inside a workflow: workflow code must be deterministic. "
    "Use kflow's `sleep()` for delays, and do I/O in a @step."
)


class WorkflowLoop(asyncio.AbstractEventLoop):
    """The event loop workflow code runs on (see module docstring).

    # Invariant: callbacks run strictly FIFO, so the interleaving of workflow tasks (and
    # therefore the position each command takes) depends only on the inputs delivered.
    """

    def __init__(self, core: RunCore) -> None:
        self.core = core
        self._ready: deque[asyncio.Handle] = deque()
        self._now_ms = 0
        self._running = False
        self._closed = False
        # Poison code (see run_ready): the first SystemExit / KeyboardInterrupt raised by workflow code,
        # and whether an activation ran out of its callback budget.
        self.fatal: BaseException | None = None
        self.exhausted = False
        # This loop's own tasks: asyncio.all_tasks(loop) would scan every task of the process (all
        # live runs), making each eviction O(live runs).
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    # -- driving ------------------------------------------------------------------------

    def run_ready(self, now_ms: int, budget: int) -> bool:
        """Run ready callbacks until none remain, with this loop installed as the running loop.

        Returns True when none remain, False when it stopped early: after ``budget`` callbacks with
        more still ready (``exhausted`` is set; the rest stay queued), or at the first ``SystemExit`` /
        ``KeyboardInterrupt`` the code raised (kept in ``fatal``; the task that raised it holds it
        as its exception). Either way the host keeps running.

        The host may call this from inside another running loop (faust's); that loop is
        swapped out for the duration and restored afterwards.
        """
        previous = events._get_running_loop()
        events._set_running_loop(self)
        self._running = True
        self._now_ms = now_ms
        ready = self._ready
        try:
            for _ in range(budget):
                if not ready:
                    return True
                handle = ready.popleft()
                if handle.cancelled():
                    continue
                try:
                    handle._run()
                except (SystemExit, KeyboardInterrupt) as exc:
                    # asyncio's Handle._run re-raises these two (a task has already stored it as its
                    # exception): on a normal loop they would stop the process.
                    if self.fatal is None:
                        self.fatal = exc
                    return False
            if not ready:
                return True
            self.exhausted = True
            return False
        finally:
            self._running = False
            events._set_running_loop(previous)

    # -- what asyncio needs -------------------------------------------------------------

    def call_soon(
        self, callback: Callable[..., object], *args: object, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: object, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        self._forbid("threads (call_soon_threadsafe)")

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: object, context: contextvars.Context | None = None
    ) -> asyncio.TimerHandle:
        self._forbid("asyncio.sleep / call_later / wait_for / timeout")

    def call_at(
        self, when: float, callback: Callable[..., object], *args: object, context: contextvars.Context | None = None
    ) -> asyncio.TimerHandle:
        self._forbid("asyncio timers (call_at / asyncio.timeout)")

    def time(self) -> float:
        """Workflow time in seconds: the time of the input being handled."""
        return self._now_ms / 1000

    def create_future(self) -> asyncio.Future[object]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._tasks.add(task)
        return task

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks created on this loop that are not done yet."""
        return [task for task in self._tasks if not task.done()]

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def call_exception_handler(self, context: dict[str, object]) -> None:
        # Unretrieved task exceptions and errors in user done-callbacks end up here; the run's
        # outcome is decided by its main task, so they are deliberately dropped.
        return None

    def default_exception_handler(self, context: dict[str, object]) -> None:
        return None

    def run_in_executor(self, executor: object, func: Callable[..., T], *args: object) -> asyncio.Future[T]:
        self._forbid("run_in_executor / asyncio.to_thread")

    async def getaddrinfo(self, *args: object, **kwargs: object) -> NoReturn:
        self._forbid("network I/O (getaddrinfo)")

    async def create_connection(self, *args: object, **kwargs: object) -> NoReturn:
        self._forbid("network I/O (create_connection)")

    async def subprocess_exec(self, *args: object, **kwargs: object) -> NoReturn:
        self._forbid("subprocesses")

    async def subprocess_shell(self, *args: object, **kwargs: object) -> NoReturn:
        self._forbid("subprocesses")

    def _forbid(self, what: str) -> NoReturn:
        raise WorkflowSandboxError(_USE_KFLOW_SLEEP.format(what=what))


def current_runtime() -> RunCore | None:
    """The run whose workflow code is executing right now, or None outside workflow code."""
    loop = events._get_running_loop()
    return loop.core if isinstance(loop, WorkflowLoop) else None
