"""Listing runs by a prefix of their id (``runs_by_id_prefix``) and by an upper start-time bound: ranges, pages,
tokens — against a fake session that answers the prefix table's queries, no server."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from storage import (
    ID_PREFIX_LENGTH,
    SCAN_BUDGET,
    PageCursor,
    PrefixListing,
    RunRow,
    day_bucket,
    decode_page,
    encode_page,
    prefix_end,
)

T0 = 1_700_000_000_000


def test_the_range_of_a_prefix_ends_at_its_last_character_plus_one() -> None:
    assert ID_PREFIX_LENGTH == 4
    assert prefix_end("ab3f") == "ab3g"
    assert prefix_end("ab3f9") == "ab3f:"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"  # past the surrogates, which no UTF-8 text holds
    assert prefix_end("\U0010ffff") is None
    every = ["ab3f", "ab3f0", "ab3fzz", "ab3f\U0010ffff"]
    assert all("ab3f" <= run_id < "ab3g" for run_id in every)


@dataclass
class FakeSession:
    """Answers ``SELECT run_id FROM ks.runs_by_id_prefix WHERE prefix = ? AND run_id >|>= ? [AND run_id < ?]
    LIMIT ?`` from a sorted list of run ids; counts the queries."""

    ids: list[str]
    queries: list[tuple[object, ...]] = field(default_factory=list)

    def prepare(self, query: str) -> str:
        return query

    def execute(self, query: str, params: tuple[object, ...]) -> list[SimpleNamespace]:
        self.queries.append(params)
        key, start, *rest = params
        end, limit = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
        above = (lambda r: r > start) if "run_id > ?" in query else (lambda r: r >= start)
        found = [
            r
            for r in sorted(self.ids)
            if r[:4] == key and above(r) and (end is None or r < end)  # type: ignore[operator]
        ]
        return [SimpleNamespace(run_id=r) for r in found[: int(str(limit))]]


def rows(ids: list[str]) -> list[RunRow]:
    return [RunRow(run_id, "w", "failed" if run_id.endswith("f") else "completed", started_at=T0) for run_id in ids]


def test_a_page_is_one_range_of_one_partition_in_id_order_with_a_token_for_the_rest() -> None:
    ids = [f"ab3f{n:02d}" for n in range(7)] + ["ab40", "ab3", "ab2fff"]
    session = FakeSession(ids)
    listing = PrefixListing(session, "ks")  # type: ignore[arg-type]
    first, token = listing.page("ab3f", (), 3, None, rows, lambda row: True)
    assert [r.run_id for r in first] == ["ab3f00", "ab3f01", "ab3f02"] and token
    second, token = listing.page("ab3f", (), 3, token, rows, lambda row: True)
    third, last = listing.page("ab3f", (), 3, token, rows, lambda row: True)
    assert [r.run_id for r in second + third] == [f"ab3f{n:02d}" for n in range(3, 7)] and last is None
    assert {q[0] for q in session.queries} == {"ab3f"}  # one partition, never another
    narrower, _ = listing.page("ab3f0", (), 50, None, rows, lambda row: True)
    assert len(narrower) == 7


def test_filters_apply_to_the_rows_read_and_a_page_reads_a_bounded_number_of_ids() -> None:
    ids = [f"cafe{n:05d}" for n in range(SCAN_BUDGET + 500)] + ["cafe99999f"]
    session = FakeSession(ids)
    listing = PrefixListing(session, "ks")  # type: ignore[arg-type]
    failed_only = ("failed",)
    found, token = listing.page("cafe", failed_only, 10, None, rows, lambda row: row.status == "failed")
    assert found == [] and token is not None  # the budget ran out before a match: a short page, and a next one
    read = sum(int(str(q[-1])) for q in session.queries)
    assert read <= SCAN_BUDGET
    found, token = listing.page("cafe", failed_only, 10, token, rows, lambda row: row.status == "failed")
    assert [r.run_id for r in found] == ["cafe99999f"] and token is None
    with pytest.raises(ValueError, match="other filters"):
        listing.page("cafe", ("completed",), 10, token or encode_prefix_token(), rows, lambda row: True)


def encode_prefix_token() -> str:
    raw = json.dumps({"v": 1, "k": "id", "p": "cafe", "a": "cafe00001", "f": ["failed"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_token_of_another_kind_of_listing_is_refused() -> None:
    listing = PrefixListing(FakeSession([]), "ks")  # type: ignore[arg-type]
    day_token = encode_page(PageCursor(day_bucket(T0), T0, "r1", "2023-11-10", None, None))
    with pytest.raises(ValueError, match="invalid page token"):
        listing.page("cafe", (), 10, day_token, rows, lambda row: True)
    with pytest.raises(ValueError, match="invalid page token"):
        decode_page(encode_prefix_token(), None, None)


def test_an_until_bound_travels_in_the_token_and_must_match() -> None:
    cursor = PageCursor(day_bucket(T0), T0, "r1", "2023-11-10", None, "w", until=T0 + 1)
    token = encode_page(cursor)
    assert decode_page(token, None, "w", None, T0 + 1) == cursor
    with pytest.raises(ValueError, match="until=None"):
        decode_page(token, None, "w")
