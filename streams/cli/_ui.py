"""``kflow ui``: serve the web UI (docs/ui.md) until Ctrl-C or SIGTERM. Needs the ``ui`` extra (aiohttp)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import signal
import sys

from streams._settings import Settings
from streams.cli._errors import CliError, UsageError


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ui`` to the ``kflow`` parser."""
    ui = groups.add_parser(
        "ui",
        help="serve the web UI: runs, a run's timeline and actions, schedules, dead letters, a dashboard",
        description="Serve the web UI and its JSON API (docs/ui.md) from Cassandra and the topics, until Ctrl-C. "
        "It has no login: it listens on 127.0.0.1 unless told otherwise; put it behind an authenticating proxy to "
        "open it to others. Needs the ui extra: pip install 'kflow[ui]'.",
    )
    ui.add_argument("--port", type=_port, default=8080, help="port to listen on (default 8080; 0: a free one)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument(
        "--allowed-host",
        action="append",
        type=_allowed_host,
        default=[],
        metavar="HOST[:PORT]",
        help="a Host name it also answers, e.g. a proxy's public name (repeatable); besides its own address, "
        "localhost, 127.0.0.1 and [::1] at its port, every other Host is refused (421)",
    )
    ui.add_argument(
        "--window",
        type=_minutes,
        default=60,
        metavar="MINUTES",
        help="the dashboard's window, and how far back it reads the topics at start (default 60)",
    )
    ui.set_defaults(handler=_serve)


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {raw!r}")
    return port


def _allowed_host(raw: str) -> str:
    from streams.ui._app import split_host  # aiohttp is optional: only its module needs it

    try:
        split_host(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return raw.strip().lower()


def _minutes(raw: str) -> int:
    try:
        minutes = int(raw)
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 1440:
        raise argparse.ArgumentTypeError(f"expected whole minutes from 1 to 1440, got {raw!r}")
    return minutes


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if importlib.util.find_spec("aiohttp") is None:
        raise CliError("kflow ui needs aiohttp: pip install 'kflow[ui]'")
    if args.host == "":
        raise UsageError("--host: expected an address, e.g. 127.0.0.1 or 0.0.0.0")
    from streams.ui import UiServer

    async def serve() -> None:
        server = UiServer(settings, args.host, args.port, minutes=args.window, allowed_hosts=args.allowed_host)
        url = await server.start()
        print(f"kflow ui on {url} (prefix {settings.topic_prefix}, keyspace {settings.keyspace}); Ctrl-C stops it")
        sys.stdout.flush()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # a container's stop: a clean exit
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    return 0
