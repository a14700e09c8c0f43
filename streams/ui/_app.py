"""The UI's aiohttp application and server (``kflow ui``): routes, the Host allow-list, error and request-origin
middlewares, and ``UiServer``, which connects a ``Client``, starts the dashboard's collector and listens."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

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


LOCAL_NAMES: Final = ("localhost", "127.0.0.1", "[::1]")


def split_host(text: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` (IPv6 in brackets) as a lower-case name and a port (None: none given).

    Raises:
        ValueError: an empty name, a port that is no number from 0 to 65535, or a character no host has.
    """
    text = text.strip().lower()
    name, sep, port = text.rpartition(":") if text.rfind(":") > text.rfind("]") else (text, "", "")
    if not name or any(c in name for c in "/@?# \t") or (sep and not (port.isdigit() and int(port) <= 65535)):
        raise ValueError(f"{text!r}: expected HOST or HOST:PORT, e.g. kflow.example.com or [::1]:8080")
    return name, int(port) if sep else None


class HostAllowList:
    """The ``Host`` values the UI answers (DNS rebinding: a name the attacker controls, pointed at 127.0.0.1, must not
    reach it): the bound host and ``LOCAL_NAMES`` at the bound port (any port until ``bind``), plus ``extra``
    (``--allowed-host``: ``HOST`` on any port, ``HOST:PORT`` on that one)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.port: int | None = None
        self._names = set(LOCAL_NAMES)
        self._extra = [split_host(one) for one in extra]

    def bind(self, hosts: Iterable[str], port: int) -> None:
        """The server listens on ``port`` at ``hosts``."""
        self.port = port
        self._names.update(f"[{h}]" if ":" in h else h.lower() for h in hosts if h)

    def allows(self, host: str) -> bool:
        try:
            name, port = split_host(host)
        except ValueError:
            return False
        if any(name == known and (wanted is None or port == wanted) for known, wanted in self._extra):
            return True
        return name in self._names and (self.port is None or (port or 80) == self.port)


GUARD: Final = web.AppKey("guard", HostAllowList)


@web.middleware
async def known_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request must name an allowed ``Host`` (421 otherwise): see ``HostAllowList``."""
    host = request.headers.get("Host", "")
    if not request.app[GUARD].allows(host):
        message = f"Host {host[:80]!r} is not one this UI answers to (kflow ui --allowed-host adds one)"
        return _api.reply({"error": message}, 421)
    return await handler(request)


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Actions (``POST``) must send JSON and, when the browser names an ``Origin``, come from an allowed host (this
    UI's own pages): another site's page cannot make a visitor's browser cancel runs (a cross-site form cannot send
    JSON)."""
    if request.method == "POST":
        origin = request.headers.get("Origin")
        foreign = origin is not None and not request.app[GUARD].allows(origin.split("://", 1)[-1])
        if request.content_type != "application/json" or foreign:
            return _api.reply({"error": "actions take a JSON body (Content-Type: application/json) from this UI"}, 403)
    return await handler(request)


def build_app(context: UiContext, guard: HostAllowList | None = None) -> web.Application:
    """The application: pages, API, static files, middlewares; ``context`` what its handlers use, ``guard`` the
    hosts it answers (default: the local names on any port)."""
    app = web.Application(middlewares=[known_host, errors, same_origin])
    app[CONTEXT] = context
    app[GUARD] = guard or HostAllowList()
    for module in (_api, _pages_runs, _pages_run, _pages_ops, _pages_dash):
        app.add_routes(module.routes)
    app.router.add_static("/static", STATIC)
    return app


class UiServer:
    """``kflow ui``'s server: ``start`` connects to Kafka, starts the dashboard's collector and listens on
    ``host``:``port`` (0: a free port); ``url`` is where it answers; ``stop`` undoes it all.

    Args:
        minutes: the dashboard's window (and how far back it reads the topics at start).
        allowed_hosts: ``HOST[:PORT]`` names it also answers (a proxy's public name), besides its own.

    Raises:
        TransportError: (``start``) Kafka is unreachable.
        UiError: (``start``) the address cannot be listened on.
    """

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        minutes: int = 60,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.settings, self.host, self.port = settings, host, port
        self.guard = HostAllowList(allowed_hosts)
        records = RecordCodec(secret=settings.secret).keeping_unknown()  # shows values of classes it lacks
        self.client = Client(settings=settings, records=records)
        self.stats = StatsCollector(settings, minutes)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Connect, listen, start collecting; returns ``url``."""
        await self.client.connect()
        runner = web.AppRunner(
            build_app(UiContext(self.settings, self.client, self.stats), self.guard), access_log=None
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            await self.client.close()
            raise UiError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.guard.bind([self.host, host], port)
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
