"""The ``kflow`` command line: one module per command group, each parses, calls a facade, prints."""

from streams.cli._app import AppLoadError, load_registry
from streams.cli._main import build_parser, main

__all__ = ["main", "build_parser", "load_registry", "AppLoadError"]
