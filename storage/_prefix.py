"""Run listings by a prefix of the run id, over ``runs_by_id_prefix`` (migration 004): no scan, whatever the number
of runs.

A run id's first ``ID_PREFIX_LENGTH`` characters are its partition key there. A prefix at least that long names one
partition, and the run ids starting with it are one clustering range of it, ``[prefix, prefix_end(prefix))``
(Cassandra orders text by its UTF-8 bytes, which is code point order). A page reads that range in slices, in run id
order, keeps the runs its other filters (status, workflow, start time) accept, and stops at ``limit`` runs or after
reading ``SCAN_BUDGET`` ids; its token is the last run id read plus the filters (the time bounds need only be present
in both: an age such as ``7d`` moves with the clock between pages). A shorter prefix is an exact id.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

ID_PREFIX_LENGTH: Final = 4
"""Characters of a run id that key ``runs_by_id_prefix``: the shortest prefix a listing looks up without a scan."""

SCAN_BUDGET: Final = 1000
"""Most run ids one page of a prefix listing reads (its filters may reject them all: the page is then short)."""

_TOKEN_VERSION: Final = 1


class Listed(Protocol):
    """What a prefix listing's filters look at in a run row (``storage.RunRow``)."""

    @property
    def run_id(self) -> str: ...


R = TypeVar("R", bound=Listed)


def id_prefix(run_id: str) -> str:
    """The ``runs_by_id_prefix`` partition of ``run_id``: its first ``ID_PREFIX_LENGTH`` characters."""
    return run_id[:ID_PREFIX_LENGTH]


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no such bound, all is above)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are no characters of UTF-8 text
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


@dataclass(frozen=True, slots=True)
class PrefixCursor:
    """What a prefix listing's page token holds: the prefix, the last run id read, and the other filters."""

    prefix: str
    after: str
    filters: tuple[str | int | None, ...]


def encode_prefix_page(cursor: PrefixCursor) -> str:
    """The opaque, URL-safe token of ``cursor``."""
    fields = {"v": _TOKEN_VERSION, "k": "id", "p": cursor.prefix, "a": cursor.after, "f": list(cursor.filters)}
    raw = json.dumps(fields, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_prefix_page(token: str, prefix: str, filters: tuple[str | int | None, ...]) -> PrefixCursor:
    """The cursor in ``token``, checked against the listing it continues.

    Raises:
        ValueError: not a token of a prefix listing, or one of another prefix or other filters.
    """
    try:
        fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor = PrefixCursor(str(fields["p"]), str(fields["a"]), tuple(fields["f"]))
        valid = fields["v"] == _TOKEN_VERSION and fields["k"] == "id"
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise ValueError(f"invalid page token {token[:40]!r}") from None
    if not valid:
        raise ValueError(f"invalid page token {token[:40]!r}")
    if cursor.prefix != prefix or not _same_filters(cursor.filters, filters):
        raise ValueError(f"page token of a listing with id prefix {cursor.prefix!r} and other filters")
    return cursor


def _same_filters(held: tuple[str | int | None, ...], given: tuple[str | int | None, ...]) -> bool:
    """Whether a token's filters are those of the listing: time bounds (ints) need only both be present, since a
    listing given an age (``7d``) parses it against the clock on every request."""
    if len(held) != len(given):
        return False
    return all(a == b or (type(a) is int and type(b) is int) for a, b in zip(held, given, strict=True))


class PrefixListing:
    """The prefix queries of one keyspace, prepared at their first use (so a keyspace not migrated to 004 yet
    serves every other query).

    Raises:
        the driver's errors, while preparing or querying (``RunStore`` wraps them).
    """

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session, self._keyspace = session, keyspace
        self._statements: dict[tuple[str, bool], PreparedStatement] = {}

    def _statement(self, op: str, bounded: bool) -> PreparedStatement:
        if (op, bounded) not in self._statements:
            select = f"SELECT run_id FROM {self._keyspace}.runs_by_id_prefix WHERE prefix = ? AND run_id {op} ? "
            query = select + ("AND run_id < ? LIMIT ?" if bounded else "LIMIT ?")
            self._statements[(op, bounded)] = self._session.prepare(query)
        return self._statements[(op, bounded)]

    def run_ids(self, prefix: str, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` run ids starting with ``prefix`` (at least ``ID_PREFIX_LENGTH`` long), in order, after
        ``after`` (None: from the first)."""
        op, start, end = (">=", prefix, prefix_end(prefix)) if after is None else (">", after, prefix_end(prefix))
        key = id_prefix(prefix)
        if end is None:
            rows = self._session.execute(self._statement(op, False), (key, start, limit))
        else:
            rows = self._session.execute(self._statement(op, True), (key, start, end, limit))
        return [row.run_id for row in rows]

    def page(
        self,
        prefix: str,
        filters: tuple[str | int | None, ...],
        limit: int,
        token: str | None,
        fetch: Callable[[list[str]], Sequence[R]],
        keep: Callable[[R], bool],
    ) -> tuple[list[R], str | None]:
        """The runs of one page (``fetch`` reads their rows, ``keep`` applies the filters) and the next token."""
        after = decode_prefix_page(token, prefix, filters).after if token else None
        taken: list[R] = []
        scanned = 0
        while True:
            want = min(max(limit + 1, 100), SCAN_BUDGET)
            ids = self.run_ids(prefix, after, want)
            rows = {row.run_id: row for row in fetch(ids)}
            for index, run_id in enumerate(ids):
                after, scanned = run_id, scanned + 1
                row = rows.get(run_id)
                if row is None or not keep(row):
                    continue
                taken.append(row)
                if len(taken) == limit:
                    more = index < len(ids) - 1 or len(ids) == want
                    return taken, self._token(prefix, run_id, filters) if more else None
            if len(ids) < want:
                return taken, None
            if scanned >= SCAN_BUDGET:
                assert after is not None
                return taken, self._token(prefix, after, filters)

    @staticmethod
    def _token(prefix: str, after: str, filters: tuple[str | int | None, ...]) -> str:
        return encode_prefix_page(PrefixCursor(prefix, after, filters))
