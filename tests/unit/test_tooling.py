"""The tools that keep the code in shape run with the suite: ruff (lint and format) and import-linter (layers)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "--no-cache", "."], ["ruff", "format", "--check", "--no-cache", "."], ["lint-imports"]],
    ids=["ruff-check", "ruff-format", "import-linter"],
)
def test_tool_passes(command: list[str]) -> None:
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_module_is_over_400_lines() -> None:
    folders = ["engine", "schemas", "storage", "streams", "tests", "bench", "examples"]
    sizes = {path: len(path.read_text().splitlines()) for folder in folders for path in (ROOT / folder).rglob("*.py")}
    assert {str(path.relative_to(ROOT)): n for path, n in sizes.items() if n > 400} == {}


def test_no_reference_points_outside_the_repository() -> None:
    patterns = ["../shared", "shared/API.md", "shared/NOTES.md", "NOTES #", "API.md §"]
    suffixes = {".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg"}
    skip = {".git", ".venv", "node_modules", "kflow.egg-info", "__pycache__"}
    found = [
        f"{path.relative_to(ROOT)}: {pattern}"
        for path in ROOT.rglob("*")
        if path.suffix in suffixes
        and not skip & set(path.relative_to(ROOT).parts)
        and path.is_file()
        and path.name != "test_tooling.py"
        for pattern in patterns
        if pattern in path.read_text(errors="replace")
    ]
    assert found == []


def test_tests_bench_and_examples_import_through_the_facades() -> None:
    private = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.module}"
        for folder in ("tests", "bench", "examples")
        for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in {"engine", "schemas", "storage", "streams"}
        and any(part.startswith("_") for part in node.module.split("."))
    ]
    assert private == []
