"""The arguments ``kflow run`` passes to the workflow: positional ``ARG``s, ``--arg KEY=VALUE`` (repeated) and
``--args-json``. A value is JSON when it parses as JSON, else the text as it is."""

from __future__ import annotations

import json
from collections.abc import Sequence

from streams.cli._errors import UsageError

_CALL_KEYS = frozenset({"args", "kwargs"})


def parse_value(raw: str) -> object:
    """An argument given on the command line: its JSON value when it parses as JSON, else the string itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_call(
    positional: Sequence[str], pairs: Sequence[str], args_json: str | None
) -> tuple[tuple[object, ...], dict[str, object]]:
    """The positional and keyword arguments of ``kflow run``.

    Args:
        positional: the ``ARG``s, in order.
        pairs: the ``--arg KEY=VALUE`` options, in order (a keyword argument each; ``VALUE`` may be empty).
        args_json: ``--args-json``: a JSON array (positional arguments), an object ``{"args": [...], "kwargs":
            {...}}`` (either member may be left out), or any other JSON object (keyword arguments, as
            pyworkflow-engine's ``--args-json``).

    Raises:
        UsageError: a pair without ``=`` or with an empty key, a keyword given twice, ``--args-json`` that is
            not JSON or not one of those shapes, positional arguments both as ``ARG``s and in ``--args-json``.
    """
    args = tuple(parse_value(raw) for raw in positional)
    kwargs: dict[str, object] = {}
    if args_json is not None:
        more_args, kwargs = _from_json(args_json)
        if more_args and args:
            raise UsageError("give positional arguments either as ARGs or in --args-json, not both")
        args = args or more_args
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--arg {pair!r}: expected KEY=VALUE (e.g. --arg amount=9.5)")
        if key in kwargs:
            raise UsageError(f"keyword argument {key!r} is given twice")
        kwargs[key] = parse_value(raw)
    return args, kwargs


def _from_json(text: str) -> tuple[tuple[object, ...], dict[str, object]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--args-json is not JSON: {exc}") from None
    if isinstance(value, list):
        return tuple(value), {}
    if not isinstance(value, dict):
        raise UsageError(
            f'--args-json must be a JSON array, an object {{"args": [...], "kwargs": {{...}}}} or an object of '
            f"keyword arguments, got {type(value).__name__}"
        )
    if not value or not set(value) <= _CALL_KEYS:
        return (), value  # keyword arguments
    args, kwargs = value.get("args", []), value.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise UsageError('--args-json {"args": ..., "kwargs": ...}: "args" must be an array and "kwargs" an object')
    return tuple(args), kwargs
