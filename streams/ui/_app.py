"""The UI's aiohttp application and server (``kflow ui``): routes, error and request-origin middlewares, and
``UiServer``, which connects a ``Client``, starts the dashboard's collector and listens."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine import KflowError, ScheduleError
from schemas import PayloadError, RecordCodec
from storage import StorageError
from streams._errors import TransportError
from streams._settings import Settings
from streams.client import Client, HookDeliveryError
from streams.ops import OpsError
from streams.ui import _api, _pages_dash, _pages_ops, _pages_run, _pages_runs
from streams.ui._context import CONTEXT, UiContext
from streams.ui._html import STATIC, error_box, page
from streams.ui._params import BadRequest, NotFound
from streams.ui._stats import StatsCollector

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UiError(KflowError):
    """The UI cannot start (its address is taken, say); one line."""

    retryable = False


def status_of(error: Exception) -> int:
    """The HTTP status of a failed request: 400 bad input, 404 nothing there, 409 refused, 503 Kafka or Cassandra
    unreachable, 504 no answer in time, else 500."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, HookDeliveryError | ScheduleError):
        return 409
    if isinstance(error, BadRequest | PayloadError | OpsError | ValueError):
        return 400
    if isinstance(error, StorageError | TransportError):
        return 503
    if isinstance(error, TimeoutError):
        return 504
    return 500


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A failed request answers ``{"error": ...}`` (API) or an error page, with ``status_of`` its status."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        status = status_of(exc)
        message = str(exc) or type(exc).__name__
        if status == 500:
            log.exception("%s %s failed", request.method, request.path)
            message = f"{type(exc).__name__}: {message}"
        if request.path.startswith("/api/"):
            return _api.reply({"error": message}, status)
        return page(request, "Error", "", f"<h1>{status}</h1>" + error_box(message), status)


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Actions (``POST``) must send JSON and, when the browser names an ``Origin``, come from this UI's own pages:
    another site's page cannot make a visitor's browser cancel runs (a cross-site form cannot send JSON)."""
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if request.content_type != "application/json" or (origin and origin.split("://", 1)[-1] != request.host):
            return _api.reply({"error": "actions take a JSON body (Content-Type: application/json) from this UI"}, 403)
    return await handler(request)


def build_app(context: UiContext) -> web.Application:
    """The application: pages, API, static files, middlewares; ``context`` what its handlers use."""
    app = web.Application(middlewares=[errors, same_origin])
    app[CONTEXT] = context
    for module in (_api, _pages_runs, _pages_run, _pages_ops, _pages_dash):
        app.add_routes(module.routes)
    app.router.add_static("/static", STATIC)
    return app


class UiServer:
    """``kflow ui``'s server: ``start`` connects to Kafka, starts the dashboard's collector and listens on
    ``host``:``port`` (0: a free port); ``url`` is where it answers; ``stop`` undoes it all.

    Args:
        minutes: the dashboard's window (and how far back it reads the topics at start).

    Raises:
        TransportError: (``start``) Kafka is unreachable.
        UiError: (``start``) the address cannot be listened on.
    """

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8080, *, minutes: int = 60) -> None:
        self.settings, self.host, self.port = settings, host, port
        records = RecordCodec(secret=settings.secret).keeping_unknown()  # shows values of classes it lacks
        self.client = Client(settings=settings, records=records)
        self.stats = StatsCollector(settings, minutes)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Connect, listen, start collecting; returns ``url``."""
        await self.client.connect()
        runner = web.AppRunner(build_app(UiContext(self.settings, self.client, self.stats)), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            await self.client.close()
            raise UiError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        await self.stats.start()
        return self.url

    async def stop(self) -> None:
        """Stop collecting and listening; disconnect."""
        await self.stats.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.client.close()
