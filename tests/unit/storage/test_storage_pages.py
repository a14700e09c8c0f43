"""Page tokens, day buckets and timestamps of the run queries — no server."""

from __future__ import annotations

import base64
import json

import pytest
from cassandra.util import datetime_from_timestamp

from engine.runtime import CallArgs
from storage import PageCursor, day_bucket, day_range, decode_page, encode_page, json_text, to_ms

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
