"""The console command's error contract: one line, no traceback, a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams import Settings


def kflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["nope"],
        ["dev", "nope"],
        ["dev", "up", "--timeout", "soon"],
        ["topics"],
        ["hooks", "resume", "r:approval", "{not json"],
    ],
)
def test_bad_arguments_get_one_line(argv: list[str]) -> None:
    done = kflow(*argv)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "error:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["dev", "up"],
        ["dev", "down"],
        ["dev", "status"],
        ["dev", "smoke"],
        ["dev", "demo"],
        ["topics", "create"],
        ["processor"],
        ["worker"],
        ["materializer"],
        ["run"],
        ["runs", "list"],
        ["runs", "show"],
        ["runs", "events"],
        ["runs", "cancel"],
        ["runs", "lag"],
        ["replay"],
        ["compact"],
        ["storage", "migrate"],
        ["hooks", "resume"],
        ["hooks", "list"],
        ["hooks", "info"],
        ["workflows", "list"],
        ["workflows", "info"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    done = kflow(*command, "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: kflow " + " ".join(command)), done.stderr


def test_help_lists_command_groups() -> None:
    done = kflow("--help")
    assert done.returncode == 0 and "dev" in done.stdout and "topics" in done.stdout


def test_status_on_an_empty_home_says_stopped(tmp_path: object) -> None:
    done = kflow("dev", "status", KFLOW_HOME=str(tmp_path))
    assert done.returncode == 4
    assert [line.split()[:2] for line in done.stdout.splitlines()] == [["kafka-1", "stopped"], ["cassandra", "stopped"]]


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "KFLOW_BOOTSTRAP": "k:1",
            "KFLOW_CASSANDRA": "c:2",
            "KFLOW_PARTITIONS": "3",
            "KFLOW_SECRET": "s",
            "KFLOW_HOME": "/x",
        }
    )
    assert (settings.bootstrap, settings.cassandra_host_port, settings.partitions, settings.secret) == (
        "k:1",
        ("c", 2),
        3,
        b"s",
    )
    assert Settings.from_env({}).topic_prefix == "kflow"
    with pytest.raises(ValueError, match="at least 1"):
        Settings.from_env({"KFLOW_PARTITIONS": "0"})


def test_event_limits_from_env() -> None:
    settings = Settings.from_env({"KFLOW_EVENT_SOFT_LIMIT": "5", "KFLOW_EVENT_HARD_LIMIT": "9"})
    assert (settings.event_soft_limit, settings.event_hard_limit) == (5, 9)
    assert (Settings.from_env({}).event_soft_limit, Settings.from_env({}).event_hard_limit) == (10_000, 50_000)
    with pytest.raises(ValueError, match="is above"):
        Settings.from_env({"KFLOW_EVENT_SOFT_LIMIT": "10", "KFLOW_EVENT_HARD_LIMIT": "9"})
    with pytest.raises(ValueError, match="must be an integer"):
        Settings.from_env({"KFLOW_EVENT_HARD_LIMIT": "lots"})
