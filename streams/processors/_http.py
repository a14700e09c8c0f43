"""The observability port: ``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` (JSON, 200 or 503).

A plain ``http.server`` on a daemon thread: scrapes never run on the event loop, and a stalled loop is still
seen (``/healthz`` probes it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.processors._health import BOARD, liveness, loop_answers, readiness
from streams.processors._metrics import REGISTRY

log = logging.getLogger(__name__)


class ObservabilityServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (port 0: a free one; see ``port``).

    Args:
        port: the TCP port.
        loop: the event loop ``/healthz`` probes.
        host: the address to bind (default all interfaces, as a pod's probes need).
    """

    def __init__(self, port: int, loop: asyncio.AbstractEventLoop, host: str = "0.0.0.0") -> None:
        self.loop = loop
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                elif path in ("/healthz", "/readyz"):
                    ok, body = server.decide(path)
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics, /healthz or /readyz\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not logged
                pass

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port: int = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="kflow-metrics", daemon=True)

    def decide(self, path: str) -> tuple[bool, dict[str, Any]]:
        """The answer to ``/healthz`` or ``/readyz`` now."""
        services = BOARD.snapshot()
        if path == "/healthz":
            return liveness(services, time.monotonic(), loop_answers(self.loop))
        return readiness(services)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()
        log.info("metrics and health on port %d (/metrics, /healthz, /readyz)", self.port)

    def stop(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()
