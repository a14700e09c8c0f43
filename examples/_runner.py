"""What ``python -m examples.<name>`` runs: the local servers (``kflow dev up``, unless ``KFLOW_BOOTSTRAP``
points elsewhere), then the example's scenario against a processor and a worker for its module."""

from __future__ import annotations

import asyncio
import os
import sys

from streams import DevStack, Settings
from streams.cli import load_registry
from streams.dev import Scenario, run_example


def main(app: str, scenario: Scenario) -> None:
    """Run the example end to end; exit 1 with a one-line message if it fails."""
    settings = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        DevStack(settings.home).up(log=lambda line: None)
    try:
        asyncio.run(run_example(settings, app, load_registry(app), scenario))
    except Exception as exc:
        print(f"example {app} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"example {app}: ok")
