"""What separates two topic prefixes besides their topics: a keyspace of each prefix's own by default, and run ids
derived from idempotency keys in a namespace of each prefix's own (the default prefix keeps its old ids)."""

from __future__ import annotations

import re
import uuid

import pytest

from streams import Settings, default_keyspace
from streams.client import RUN_ID_NAMESPACE, run_id_for

VALID = re.compile(r"[a-z][a-z0-9_]{0,47}")


def test_the_default_prefix_keeps_the_kflow_keyspace_and_a_plain_prefix_gets_its_own() -> None:
    assert default_keyspace("kflow") == "kflow"
    assert default_keyspace("shop") == "kflow_shop"
    assert default_keyspace("shop_eu2") == "kflow_shop_eu2"


@pytest.mark.parametrize(
    "prefixes",
    [("my-app", "my_app", "my.app"), ("MyApp", "myapp"), ("a" * 42, "a" * 43, "a" * 60, "a" * 61), ("", "_", "kflow_")],
)
def test_every_prefix_gets_a_valid_keyspace_and_different_prefixes_different_ones(prefixes: tuple[str, ...]) -> None:
    names = [default_keyspace(prefix) for prefix in prefixes]
    assert all(VALID.fullmatch(name) for name in names), names
    assert len(set(names)) == len(prefixes), names
    assert default_keyspace("my-app").startswith("kflow_my_app_")  # still recognisable


def test_settings_derive_the_keyspace_from_the_prefix_unless_one_is_configured() -> None:
    assert Settings.from_env({}).keyspace == "kflow"
    assert Settings.from_env({"KFLOW_TOPIC_PREFIX": "shop"}).keyspace == "kflow_shop"
    assert Settings.from_env({"KFLOW_TOPIC_PREFIX": "shop", "KFLOW_KEYSPACE": "orders"}).keyspace == "orders"


def test_run_ids_from_one_key_differ_between_prefixes_and_stay_stable_within_one() -> None:
    default = run_id_for("checkout", "o-1")
    assert default == run_id_for("checkout", "o-1", topic_prefix="kflow")  # the default prefix: ids as before
    assert default == uuid.uuid5(RUN_ID_NAMESPACE, "checkout\0o-1").hex
    shop = run_id_for("checkout", "o-1", topic_prefix="shop")
    assert shop == run_id_for("checkout", "o-1", topic_prefix="shop")
    assert shop == uuid.uuid5(uuid.uuid5(RUN_ID_NAMESPACE, "shop"), "checkout\0o-1").hex  # for other languages
    assert len({default, shop, run_id_for("checkout", "o-1", topic_prefix="shop-eu")}) == 3
    assert run_id_for("checkout", None, topic_prefix="shop") != run_id_for("checkout", None, topic_prefix="shop")
