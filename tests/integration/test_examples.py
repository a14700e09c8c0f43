"""Every example runs end to end with its one command (``python -m examples.<name>``) on real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "basic": ["'charged': 9.5", "StepFailed", "TimerElapsed", "WorkflowCompleted"],
    "hooks": ["approved: o-1 shipped", "expired: o-2: nobody approved in 500ms"],
    "children": ["'failed': ['unicorn']", "'total': 9.0"],
    "cancellation": ["cancelled: run ", "result='gpu-7 released'", "reason='job no longer needed'"],
    "continue_as_new": ["sum of 0..49 = 1225", "chain of 5 runs"],
    "step_context": ["billed 9.5 to acme in eu", "billed 9.5 to acme in us"],
    "idempotency": ["5 racing starts -> 1 run", "returns the same run: True, started 1 time(s)"],
    "schedules": [
        "fired 3 times, run ids derived from the nominal times: ['eu: all green', 'eu: all green', 'eu: all green']",
        "paused: 0 fires in 2 s",
        "triggered run ",
        "backfilled 3 fires of 3 minutes ago: ['eu: all green', 'eu: all green', 'eu: all green']",
        "deleted: get_schedule -> None",
        "@scheduled_workflow: activated ['morning_report'], again ['morning_report'] (unchanged: True)",
        "triggered the declared schedule: eu: all green",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_with_one_command(settings: Settings, name: str) -> None:
    env = {
        **os.environ,
        "KFLOW_BOOTSTRAP": settings.bootstrap,
        "KFLOW_CASSANDRA": settings.cassandra,
        "KFLOW_TOPIC_PREFIX": f"{settings.topic_prefix}-ex-{name}",
        "KFLOW_PARTITIONS": "2",
        "KFLOW_KEYSPACE": f"{settings.keyspace}_ex_{name}",
    }
    done = subprocess.run(
        [sys.executable, "-m", f"examples.{name}"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"example examples.{name}: ok" in done.stdout
    for snippet in EXPECTED[name]:
        assert snippet in done.stdout, done.stdout
