"""OpenTelemetry is optional (the ``kflow[otel]`` extra): without it nothing imports it, no header is written and
nothing changes; with it, importing kflow still imports none of it. ``KFLOW_TRACES`` sets a provider up, documented.

Each case runs in a fresh interpreter: ``sys.modules`` there tells exactly what was imported.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams import Settings

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

LOADED = "sorted(m for m, v in sys.modules.items() if m.split('.')[0] == 'opentelemetry' and v is not None)"

A_TRACED_START = """
from partition_samples import RECORDS, logic, result, start
parent = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
traced, plain = logic(), logic()
inputs = [start("r1"), result("r1", 0, "v"), result("r1", 1, "v")]  # the run "twice": two steps, then finished
outputs = [out for i, value in enumerate(inputs) for out in traced.process(b"r1", value, i, 10 + i, trace=parent)]
same = [out for i, value in enumerate(inputs) for out in plain.process(b"r1", value, i, 10 + i)]
assert [o.topic for o in same][-2:] == ["completions", "state"]
"""


def python(code: str, *, block_otel: bool = False) -> str:
    """Run ``code`` in a new interpreter (with ``opentelemetry`` unimportable when ``block_otel``); its stdout."""
    prelude = "import sys\n" + (
        "sys.modules['opentelemetry'] = None  # import opentelemetry: ImportError\n" * block_otel
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": f"{ROOT}:{HERE}", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_importing_kflow_imports_no_opentelemetry_even_when_it_is_installed() -> None:
    code = "import engine, streams, streams.cli, streams.client, streams.processors, streams.ops\n"
    code += f"streams.cli.build_parser()\nprint({LOADED})\n"
    code += "from importlib.metadata import version\nprint(version('opentelemetry-api'))\n"  # installed (no import)
    loaded, installed = python(code).splitlines()
    assert (loaded, installed.split(".")[0]) == ("[]", "1")


def test_without_the_extra_nothing_is_imported_no_header_is_written_and_nothing_changes() -> None:
    code = (
        A_TRACED_START
        + f"""
assert not any(o.headers for o in outputs), [o.headers for o in outputs]
assert outputs == same  # the same records, byte for byte
from streams import configure_traces
assert configure_traces("off", "kflow-test") is False
try:
    configure_traces("otlp", "kflow-test")
except ValueError as exc:
    print(exc)
print({LOADED})
"""
    )
    out = python(code, block_otel=True)
    assert out == "KFLOW_TRACES=otlp needs OpenTelemetry: pip install 'kflow[otel]'\n[]\n"


def test_with_the_extra_the_same_run_carries_its_context() -> None:
    out = python(A_TRACED_START + "print(sorted({o.topic for o in outputs if o.headers}))")
    assert out == "['completions', 'history', 'tasks']\n"  # what the run wrote; passed through: no provider here


def test_console_traces_print_the_spans_with_the_service_name() -> None:
    code = "from streams import configure_traces\nassert configure_traces('console', 'kflow-test')\n" + A_TRACED_START
    out = python(code)  # the provider flushes at exit
    assert '"name": "RunWorkflow:twice"' in out and '"name": "CompleteWorkflow:twice"' in out
    assert '"service.name": "kflow-test"' in out and '"trace_id": "0x0af7651916cd43dd8448eb211c80319c"' in out


def test_kflow_traces_is_a_setting() -> None:
    assert Settings().traces == "off"
    assert Settings.from_env({"KFLOW_TRACES": "otlp"}).traces == "otlp"
    with pytest.raises(ValueError, match="KFLOW_TRACES"):
        Settings.from_env({"KFLOW_TRACES": "jaeger"})


def test_docs_list_every_variable_settings_reads() -> None:
    read: set[str] = set()

    class Recording(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:
            read.add(key)
            return default

        def __contains__(self, key: object) -> bool:
            read.add(str(key))
            return False

    Settings.from_env(Recording())
    section = (ROOT / "docs" / "api.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `KFLOW_")]
    documented = {name for row in rows for name in re.findall(r"`(KFLOW_[A-Z_]+)`", row)}
    assert "KFLOW_TRACES" in documented
    assert documented == {name for name in read if name.startswith("KFLOW_")}
