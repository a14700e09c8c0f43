"""What the web UI tests share: kflow's services for ``ui_workflows`` (and ``examples.basic``) in this process with a
``UiServer`` on a free port; an event loop on a thread of its own for the browser tests (selenium blocks, the
services must not); and Debian's headless Chromium driven through ``/usr/bin/chromedriver`` (Selenium Manager is
never asked for anything)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from engine import Registry
from streams import Client, Settings, Topics, create_topics
from streams.processors import HistoryMaterializer, Orchestrator, StepWorker, TimerProcessor
from streams.ui import UiServer

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # examples.basic, as `python -m pytest` (make test) has it from the working directory
    sys.path.append(str(ROOT))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 1000)


@dataclasses.dataclass
class UiApp:
    settings: Settings
    client: Client  # knows the registry: refuses unknown workflows before sending
    raw: Client  # the UI's own client (no registry): sends what it is given
    url: str


@asynccontextmanager
async def ui_services(settings: Settings, suffix: str, state_dir: Path) -> AsyncIterator[UiApp]:
    """Topics and a keyspace of their own, the orchestrator, timer processor, step worker and materializer of
    ``ui_workflows`` + ``examples.basic``, and the UI on 127.0.0.1 (a free port)."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-{suffix}", keyspace=f"{settings.keyspace}_{suffix}")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_modules(["ui_workflows", "examples.basic"])
    services: list[Orchestrator | TimerProcessor | StepWorker | HistoryMaterializer] = [
        Orchestrator(own, registry),
        TimerProcessor(own, state_dir=state_dir),
        StepWorker(own, registry, concurrency=8),
        HistoryMaterializer(own),
    ]
    for service in services:
        await service.start()
    server = UiServer(own, "127.0.0.1", 0, minutes=30)
    try:
        url = await server.start()
        async with Client(settings=own, registry=registry) as client:
            yield UiApp(own, client, server.client, url)
    finally:
        await server.stop()
        for service in reversed(services):
            await service.stop()


class LoopThread:
    """An event loop running on a thread of its own; ``run`` waits (blocking) for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ui-test-loop", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 180) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


def chrome() -> WebDriver:
    """Headless Chromium (new headless mode), no sandbox (the tests may run as root), a fixed window size."""
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(*WINDOW)
    return driver
