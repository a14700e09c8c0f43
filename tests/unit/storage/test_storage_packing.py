"""How the history writer packs partition groups into requests (``storage._cql.pack_groups``) — no server."""

from __future__ import annotations

from storage import REQUEST_BYTES, REQUEST_PARTITIONS, Write, group_writes, pack_groups, weight


def _write(table: str, key: str, blob: bytes = b"x" * 10) -> Write:
    return Write("stmt", (key, blob), (table, key), len(blob))  # type: ignore[arg-type]  # a statement stand-in


def _groups(count: int, blob: bytes = b"x" * 10) -> list[list[Write]]:
    return group_writes([_write("events", f"run-{i}", blob) for i in range(count)])


def test_groups_on_the_same_replicas_share_a_request_up_to_the_partition_cap() -> None:
    packs = pack_groups(_groups(25), lambda group: "node-a")
    assert [len(pack) for pack in packs] == [10, 10, 5]
    assert REQUEST_PARTITIONS == 10  # Cassandra's unlogged_batch_across_partitions_warn_threshold


def test_a_request_stays_under_the_byte_cap_and_a_heavier_group_goes_alone() -> None:
    heavy = group_writes([_write("events", "big", b"b" * (REQUEST_BYTES + 1))])
    light = _groups(6, b"l" * 1000)  # about 1,010 bytes each: four fit in 4 KiB
    packs = pack_groups([*light[:2], *heavy, *light[2:]], lambda group: None)
    assert [[g[0].partition[1] for g in pack] for pack in packs] == [
        ["run-0", "run-1", "run-2", "run-3"],
        ["big"],
        ["run-4", "run-5"],
    ]
    assert all(sum(weight(w) for g in pack for w in g) <= REQUEST_BYTES for pack in packs if len(pack) > 1)


def test_groups_on_different_replicas_never_share_a_request() -> None:
    groups = _groups(8)
    packs = pack_groups(groups, lambda group: int(group[0].partition[1].split("-")[1]) % 2)  # two replica sets
    assert len(packs) == 2
    for pack in packs:
        assert len({int(g[0].partition[1].split("-")[1]) % 2 for g in pack}) == 1
    assert sorted(w.partition for pack in packs for g in pack for w in g) == sorted(
        w.partition for g in groups for w in g
    )


def test_a_partition_keeps_its_writes_in_order_inside_its_request() -> None:
    writes = [_write("events", "run", bytes([i]) * 10) for i in range(5)] + [_write("runs", "run")]
    (pack,) = pack_groups(group_writes(writes), lambda group: None)
    assert [w for g in pack for w in g if w.partition == ("events", "run")] == writes[:5]
    assert len(pack) == 2  # events and runs partitions: one request


def test_weight_counts_text_and_blobs_by_length_and_other_values_as_eight() -> None:
    write = Write("stmt", ("abc", b"12345", 7, None), ("t", "k"))  # type: ignore[arg-type]
    assert weight(write) == 3 + 5 + 8 + 8
