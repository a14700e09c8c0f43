"""The ``kflow`` surface: one error root, one line per error, exit statuses, ``--debug``, ``--version`` and the
``KFLOW_*`` variables in ``--help`` (no servers: nothing listens on 127.0.0.1:1). ``--json``: test_cli_json.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError
from cassandra.cluster import NoHostAvailable

from engine import CancellationError, KflowError
from schemas import SchemaError
from storage import StorageError
from streams import DevStackError, InternalTopicError, Settings, Topics, TransportError, create_topics
from streams.cli import AppLoadError, CliError, UsageError, exit_status, main
from streams.ops import OpsError, RebuildError

ROOT = Path(__file__).resolve().parents[3]
NOWHERE = {"KFLOW_BOOTSTRAP": "127.0.0.1:1", "KFLOW_CASSANDRA": "127.0.0.1:1"}  # nothing listens there


def kflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **NOWHERE, **env},
        cwd=ROOT,
        timeout=60,
    )


def in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


# --- one error root ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [SchemaError, StorageError, TransportError, InternalTopicError, DevStackError, OpsError, RebuildError],
)
def test_every_error_derives_from_kflow_error(error: type[Exception]) -> None:
    assert issubclass(error, KflowError) and isinstance(error.retryable, bool)  # type: ignore[attr-defined]


def test_transport_error_wraps_the_kafka_error_in_one_line() -> None:
    cause = KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
    error = TransportError.wrapping(cause, "127.0.0.1:1", "connecting the client producer")
    assert str(error) == (
        "Kafka at 127.0.0.1:1 is unreachable (connecting the client producer): "
        "KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 1)]"
    )
    assert (
        error.unreachable
        and error.retryable
        and (error.bootstrap, error.doing) == ("127.0.0.1:1", "connecting the client producer")
    )
    refused = TransportError.wrapping(UnknownTopicOrPartitionError(), "b:1", "sending")
    assert str(refused).startswith("Kafka at b:1 refused a request (sending): ") and not refused.unreachable
    assert str(TransportError.wrapping(OSError("line one\nline two"), "b:1", "x")) == (
        "Kafka at b:1 is unreachable (x): OSError: line one line two"
    )


def test_a_boundary_raises_transport_error_from_the_kafka_error() -> None:
    with pytest.raises(TransportError, match=r"^Kafka at 127.0.0.1:1 is unreachable \(creating topics\): ") as caught:
        asyncio.run(create_topics("127.0.0.1:1", Topics("nowhere"), 1))
    assert isinstance(caught.value.__cause__, KafkaConnectionError)


def storage_error(cause: BaseException | None) -> StorageError:
    try:
        raise StorageError("Cassandra said no") from cause
    except StorageError as exc:
        return exc


def settings_error(env: Mapping[str, str]) -> KflowError:
    with pytest.raises(KflowError) as caught:
        Settings.from_env(env)
    assert isinstance(caught.value, ValueError)  # as Settings.from_env documented before
    return caught.value


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UsageError("bad value"), 2),
        (settings_error({"KFLOW_PARTITIONS": "0"}), 2),
        (TransportError("Kafka at x is unreachable"), 4),
        (storage_error(NoHostAvailable("no host", {})), 4),
        (storage_error(ConnectionRefusedError(111, "refused")), 4),
        (storage_error(None), 1),
        (CliError("nothing to do"), 1),
        (AppLoadError("cannot import -A x"), 1),
        (OpsError("no run x"), 1),
        (DevStackError("maven failed"), 1),
        (CancellationError("cancelled"), 1),
    ],
)
def test_exit_statuses(error: KflowError, status: int) -> None:
    assert exit_status(error) == status


# --- unreachable servers: one line, exit 4 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["topics", "create"],
        ["run", "examples.basic:order", "o-1", "9.5"],
        ["runs", "cancel", "some-run"],  # reads Cassandra first
        ["runs", "list"],
        ["runs", "lag"],
        ["hooks", "resume", "some-run:approval", "{}"],
        ["schedules", "list"],
        ["schedules", "create", "nightly", "--workflow", "report", "--cron", "0 9 * * *"],
        ["schedules", "trigger", "nightly", "--json"],
        ["compact", "--older-than", "1d"],  # reads Cassandra first
        ["replay", "--rebuild"],
        ["storage", "migrate"],
        ["ui", "--port", "0"],
    ],
)
def test_an_unreachable_server_is_one_line_and_exit_4(argv: list[str]) -> None:
    done = kflow(*argv)
    assert (done.returncode, done.stdout) == (4, ""), done.stderr
    assert done.stderr.startswith("kflow: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "127.0.0.1:1 is unreachable" in done.stderr and "Traceback" not in done.stderr


def test_debug_shows_the_traceback() -> None:
    done = kflow("--debug", "topics", "create")
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    assert "streams.TransportError: Kafka at 127.0.0.1:1 is unreachable (creating topics)" in done.stderr
    assert "KafkaConnectionError" in done.stderr  # the cause, chained


# --- version, help, usage ----------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert in_process(["--version"], capsys) == (0, f"kflow {version('kflow')}\n", "")


class RecordingEnv(dict[str, str]):
    """An empty environment that remembers every name looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def test_help_lists_every_variable_settings_reads_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    env = RecordingEnv()
    Settings.from_env(env)
    names = {name for name in env.read if name.startswith("KFLOW_")}
    assert len(names) >= 9
    status, out, _ = in_process(["--help"], capsys)
    assert status == 0
    listed = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("KFLOW_")}
    assert set(listed) == names
    assert "[127.0.0.1:9092]" in listed["KFLOW_BOOTSTRAP"] and "[4]" in listed["KFLOW_PARTITIONS"]
    assert "exit status:" in out and "4    Kafka or Cassandra is unreachable" in out


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["run", "no-colon"], {}, "expected MODULE:WORKFLOW, got 'no-colon'"),
        (["run", "examples.basic:nope"], {}, "no workflow named 'nope'"),
        (["compact", "--older-than", "soon"], {}, "--older-than 'soon': expected a duration"),
        (["replay", "--rebuild", "--from", "last week"], {}, "--from 'last week': expected a duration"),
        (["schedules", "update", "s"], {}, "nothing to update"),
        (["schedules", "create", "s", "--workflow", "w", "--cron", "61 * * * *"], {}, "value 61 is out of range"),
        (["schedules", "backfill", "s", "--start", "2025-01-02", "--end", "2025-01-01"], {}, "needs start < end"),
        (["topics", "create"], {"KFLOW_PARTITIONS": "0"}, "KFLOW_PARTITIONS must be at least 1, got 0"),
        (["runs", "list"], {"KFLOW_CASSANDRA": "host:port"}, "KFLOW_CASSANDRA must be host or host:port"),
        (["runs", "list", "--limit", "0"], {}, "argument --limit: expected a positive integer"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # -A examples.basic
    for name, value in {**NOWHERE, **env}.items():
        monkeypatch.setenv(name, value)
    status, out, err = in_process(argv, capsys)
    assert (status, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith("kflow") and "error: " in err and says in err  # argparse's: "kflow runs list: error: …"
