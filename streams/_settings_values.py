"""The parsers behind ``Settings``: each turns the text of one ``KFLOW_*`` variable into its value, or raises a
``SettingsError`` whose message names the variable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine import InvalidDurationError
from engine.runtime import parse_duration
from storage import CONSISTENCY_LEVELS, CassandraTarget
from streams._errors import SettingsError

_MIN_RETENTION_MS = 3_600_000
DEFAULT_CONSISTENCY = CassandraTarget().read_consistency  # LOCAL_QUORUM

Replication = tuple[tuple[str, str | int], ...]
"""A keyspace replication as ordered ``(option, value)`` pairs (``storage.parse_replication``)."""


def positive_int(raw: object, name: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise SettingsError(f"{name} must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def default_home(env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kflow"


def parse_retention(raw: str, name: str = "KFLOW_RETENTION") -> int:
    """``retention.ms`` from ``-1`` (unbounded) or a duration of at least an hour (``30d``, ``2w``, ``36h``).

    Raises:
        SettingsError: anything else (the message names ``name``).
    """
    text = raw.strip()
    if text == "-1":
        return -1
    try:
        ms = parse_duration(text) if text and not text.isdigit() else None
    except InvalidDurationError:
        ms = None
    if ms is None:
        raise SettingsError(f"{name} must be -1 (unbounded) or a duration such as 30d, 2w or 36h, got {raw!r}")
    if ms < _MIN_RETENTION_MS:
        raise SettingsError(f"{name} must be at least 1h (or -1 for unbounded), got {raw!r}")
    return ms


def parse_contact_points(raw: str, name: str = "KFLOW_CASSANDRA") -> tuple[tuple[str, int], ...]:
    """Comma-separated ``host[:port]`` contact points (port 9042 when omitted; ``[v6]:port`` for IPv6).

    Raises:
        SettingsError: an empty list, an empty host, a port that is not a number in 1..65535.
    """
    points: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            raise SettingsError(f"{name} must be host[:port] contact points separated by commas, got {raw!r}")
        if part.startswith("["):  # [::1]:9042
            host, _, rest = part[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
        elif part.count(":") == 1:
            host, _, port = part.partition(":")
        else:  # a name, an IPv4 address, or a bare IPv6 address (no port)
            host, port = part, ""
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise SettingsError(f"{name} must be host or host:port (comma-separated), got {part!r}")
        points.append((host, int(port) if port else 9042))
    return tuple(points)


def parse_consistency(raw: str, name: str = "KFLOW_CASSANDRA_CONSISTENCY") -> tuple[str, str]:
    """``(read, write)`` consistency level names from ``LEVEL`` (both) or ``read=LEVEL,write=LEVEL`` (either
    may be left out: it stays ``LOCAL_QUORUM``); names are case-insensitive.

    Raises:
        SettingsError: an unknown level or key.
    """
    levels = {"read": DEFAULT_CONSISTENCY, "write": DEFAULT_CONSISTENCY}
    text = raw.strip()
    parts = [(p.partition("=")[0].strip().lower(), p.partition("=")[2].strip()) for p in text.split(",")]
    if "=" not in text:
        parts = [("read", text), ("write", text)]
    for key, level in parts:
        if key not in levels:
            raise SettingsError(f"{name} must be LEVEL or read=LEVEL,write=LEVEL, got {raw!r}")
        if level.upper() not in CONSISTENCY_LEVELS:
            raise SettingsError(f"{name}: unknown consistency level {level!r} (one of {', '.join(CONSISTENCY_LEVELS)})")
        levels[key] = level.upper()
    return levels["read"], levels["write"]
