"""Page tokens, day buckets and timestamps of the run queries — no server."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace

import pytest
from cassandra.util import datetime_from_timestamp

import storage
from engine.runtime import CallArgs
from storage import PageCursor, day_bucket, day_range, decode_page, encode_page, json_text, to_ms

MAX_DAYS_PER_PAGE = storage.MAX_DAYS_PER_PAGE
MIN_DAY = storage.MIN_DAY

T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def test_a_token_round_trips_and_is_url_safe() -> None:
    cursor = PageCursor(
        bucket=day_bucket(T0),
        started_at=T0,
        run_id="ab" * 16,
        floor="2023-10-15",
        status="completed",
        workflow="orders/v2 ✓",
    )
    token = encode_page(cursor)
    assert all(ch.isalnum() or ch in "-_" for ch in token)
    assert decode_page(token, "completed", "orders/v2 ✓") == cursor


def test_a_token_holds_the_bucket_and_the_last_key() -> None:
    token = encode_page(PageCursor("2023-11-14", T0, "r1", "2023-10-15", None, None))
    fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert (fields["b"], fields["t"], fields["r"], fields["f"]) == ("2023-11-14", T0, "r1", "2023-10-15")


def test_a_token_of_another_listing_is_refused() -> None:
    token = encode_page(PageCursor(day_bucket(T0), T0, "r1", "2023-10-15", "running", None))
    with pytest.raises(ValueError, match="status='running'"):
        decode_page(token, "failed", None)
    with pytest.raises(ValueError):
        decode_page(token, "running", "orders")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "e30",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        encode_page(PageCursor("2023-11-15", T0, "r", "2023-10-15", None, None)),
        encode_page(PageCursor(day_bucket(T0), T0, "r", "15/10/2023", None, None)),
    ],
)
def test_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="invalid page token"):
        decode_page(token, None, None)


def test_day_buckets_are_utc_days() -> None:
    assert day_bucket(T0) == "2023-11-14"
    assert day_bucket(1_700_006_400_000 - 1) == "2023-11-14"  # 23:59:59.999 UTC
    assert day_bucket(1_700_006_400_000) == "2023-11-15"


def test_day_range_walks_back_to_the_floor_inclusive() -> None:
    assert day_range("2024-03-01", "2024-02-27") == ["2024-03-01", "2024-02-29", "2024-02-28", "2024-02-27"]
    assert day_range("2024-03-01", "2024-03-01") == ["2024-03-01"]
    assert day_range("2024-03-01", "2024-03-02") == []


def test_cql_timestamps_convert_back_to_the_same_milliseconds() -> None:
    for ms in (0, 1, 999, T0, 1_700_000_000_999, 4_102_444_800_001):
        # how the driver decodes a timestamp column: a naive UTC datetime built from float seconds
        assert to_ms(datetime_from_timestamp(ms / 1000)) == ms
    assert to_ms(None) is None


def test_args_and_results_are_json_text() -> None:
    assert json_text(CallArgs((1, "é"), {"k": [1, 2]})) == '{"args":[1,"é"],"kwargs":{"k":[1,2]}}'
    assert json_text({"a": None}) == '{"a":null}'
    # typed values: the tagged JSON of the json+types payload codec (docs/payloads.md)
    assert json_text({1, 2}) == '{"$kflow":"set","items":[1,2]}'
    assert json_text(CallArgs(((1, 2),), {})) == '{"args":[{"$kflow":"tuple","items":[1,2]}],"kwargs":{}}'
    # what no JSON codec carries (a value from a cloudpickle payload): the repr of what JSON cannot hold
    assert json_text({"o": object()}).startswith('{"o":"<object object at ')
    assert json_text({(1, 2): object()}).startswith('"{(1, 2): <object object at ')  # a key JSON cannot have


def test_a_since_bound_travels_in_the_token_and_must_match() -> None:
    cursor = PageCursor(day_bucket(T0), T0, "r1", "2023-11-10", "running", None, since=T0 - 86_400_000)
    token = encode_page(cursor)
    assert decode_page(token, "running", None, T0 - 86_400_000) == cursor
    with pytest.raises(ValueError, match="since=None"):
        decode_page(token, "running", None)
    plain = encode_page(PageCursor(day_bucket(T0), T0, "r1", "2023-11-10", None, None))
    assert "n" not in json.loads(base64.urlsafe_b64decode(plain + "=" * (-len(plain) % 4)))  # tokens as before
    with pytest.raises(ValueError, match=f"since={T0}"):
        decode_page(plain, None, None, T0)


# --- the listing walk (storage._listing) over a fake session: bounds from tokens, clamps, the day cap ---

DAY_MS = 86_400_000


@dataclass
class ListingSession:
    """Answers the listing's SELECTs over ``runs_by_status``/``runs_by_workflow`` from ``(workflow, status,
    started_at, run_id)`` rows; records the day buckets read."""

    runs: list[tuple[str, str, int, str]]
    buckets: list[str] = field(default_factory=list)

    def prepare(self, query: str) -> str:
        return query

    def execute(self, query: str, params: tuple[object, ...]) -> list[SimpleNamespace]:
        values = list(params)
        key, bucket = values.pop(0), str(values.pop(0))
        after = (values.pop(0), values.pop(0)) if "(started_at, run_id) <" in query else None
        status = values.pop(0) if "AND status = ?" in query else None
        limit = int(str(values.pop(0)))
        self.buckets.append(bucket)
        by_workflow = "runs_by_workflow" in query
        found = sorted(
            (
                (started, run_id)
                for workflow, state, started, run_id in self.runs
                if (workflow if by_workflow else state) == key
                and (status is None or state == status)
                and day_bucket(started) == bucket
                and (after is None or (started, run_id) < after)
            ),
            reverse=True,
        )
        return [SimpleNamespace(started_at=datetime_from_timestamp(t / 1000), run_id=r) for t, r in found[:limit]]


def listing_of(runs: list[tuple[str, str, int, str]], now: list[int]) -> tuple[storage.RunListing, ListingSession]:
    session = ListingSession(runs)
    clock = SimpleNamespace(now_ms=lambda: now[0])
    return storage.RunListing(session, "ks", clock, 30), session  # type: ignore[arg-type]


def test_paging_an_age_goes_on_when_the_clock_has_moved() -> None:
    runs = [("w", "completed", T0 - n * 3_600_000, f"r{n}") for n in range(5)]
    now = [T0 + 1000]
    listing, _ = listing_of(runs, now)
    first = listing.page(None, "w", now[0] - 7 * DAY_MS, 2, None)  # since=7d
    assert first.run_ids == ["r0", "r1"] and first.next_page
    now[0] += 5000  # the next request parses 7d again: a later since
    second = listing.page(None, "w", now[0] - 7 * DAY_MS, 2, first.next_page)
    assert second.run_ids == ["r2", "r3"]
    with pytest.raises(ValueError, match="since=None"):  # the bound must still be there
        listing.page(None, "w", None, 2, first.next_page)
    prefix_token = storage.encode_prefix_page(storage.PrefixCursor("ab3f", "ab3f01", (None, "w", T0, None)))
    assert storage.decode_prefix_page(prefix_token, "ab3f", (None, "w", T0 + 5000, None)).after == "ab3f01"
    with pytest.raises(ValueError):
        storage.decode_prefix_page(prefix_token, "ab3f", (None, "w", None, None))
    with pytest.raises(ValueError):
        storage.decode_prefix_page(prefix_token, "ab3f", ("failed", "w", T0, None))


def test_a_walk_reads_at_most_the_day_cap_and_its_token_goes_on() -> None:
    old = T0 - 400 * DAY_MS
    listing, session = listing_of([("w", "completed", old, "old")], [T0])
    since = 0  # 1970-01-01: the walk starts at MIN_DAY, not 1970
    token: str | None = None
    found: list[str] = []
    pages = 0
    while True:
        session.buckets.clear()
        page = listing.page(None, "w", since, 10, token)
        assert len(session.buckets) <= MAX_DAYS_PER_PAGE
        found += page.run_ids
        pages += 1
        if page.next_page is None:
            break
        token = page.next_page
    assert found == ["old"]
    assert min(session.buckets) == MIN_DAY.isoformat()
    assert pages == -(-((date.fromisoformat(day_bucket(T0)) - MIN_DAY).days + 2) // MAX_DAYS_PER_PAGE)


@pytest.mark.parametrize(
    ("bucket", "started_at", "floor"),
    [
        ("9999-12-30", 253_402_041_600_000, "2023-10-15"),  # far ahead: millions of days to walk
        (day_bucket(T0), T0, "0001-01-01"),  # floor before MIN_DAY (was an OverflowError)
        ("1999-12-31", 946_598_400_000, "1999-12-01"),
    ],
)
def test_a_forged_token_far_out_is_refused(bucket: str, started_at: int, floor: str) -> None:
    listing, session = listing_of([], [T0])
    token = encode_page(PageCursor(bucket, started_at, "r", floor, None, "w"))
    with pytest.raises(ValueError, match="invalid page token"):
        listing.page(None, "w", None, 10, token)
    assert session.buckets == []
