"""The ``kflow`` command line: one module per command group, each parses, calls a facade, prints."""

from streams.cli._main import main

__all__ = ["main"]
