"""The short chaos run (``python -m bench.chaos --short``): a workload of retried steps, sleeps, hooks, children
and continue-as-new, driven while processors and workers are killed, terminated and frozen past the session
timeout (and one broker of a private 3-broker cluster killed, when ``kflow dev up --brokers`` exists); the
checker then finds no lost run, no duplicate completion and no other violation.

The harness runs as a subprocess in a process group of its own: whatever happens, the group is killed and a
private stack it may have left is stopped and wiped at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from streams import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 540


@pytest.mark.timeout(BUDGET_S + 120)
def test_short_chaos_run_finds_no_violation(servers: Settings) -> None:
    folder = Path(tempfile.mkdtemp(prefix="kflow-chaos-test-"))  # kept when the run fails: logs and ledger
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    harness = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos", "--short", "--folder", str(folder), "--port-offset", "2000"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = harness.communicate(timeout=BUDGET_S)
    except subprocess.TimeoutExpired:
        harness.send_signal(signal.SIGTERM)  # the harness stops its processes and private stack in its finally
        output, _ = harness.communicate(timeout=90)
        pytest.fail(f"the chaos run took over {BUDGET_S} s:\n{output[-6000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(harness.pid, signal.SIGKILL)  # anything of the harness's group still running
        if (folder / "stack").exists():  # a private stack left behind by a harness that could not clean up
            stack_env = {**env, "KFLOW_HOME": str(folder / "stack"), "KFLOW_DEV_PORT_OFFSET": "2000"}
            subprocess.run(
                [sys.executable, "-m", "streams.cli", "dev", "down", "--wipe"], env=stack_env, timeout=120, check=False
            )
    print(output)
    assert harness.returncode == 0, output[-8000:]
    assert "checker verdict: OK" in output
    assert "lost 0" in output
    shutil.rmtree(folder, ignore_errors=True)
