"""Deleting large values: O(1) at the delete, reclaimed afterwards in bounded Raft steps
(`cairn.store.reclaim`), through every delete path, snapshots, restarts, splits, merges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from store_harness import FakeClock, MachineClient, resp2

from cairn.meta.region import Region
from cairn.raft.types import ConfState
from cairn.resp.reply import OK, Array, Bulk, Integer, Reply
from cairn.storage import LmdbOptions
from cairn.storage.node_store import NodeStore
from cairn.storage.region_meta import RegionLocalState
from cairn.store import MemoryKeyspace, Scope, StoreMachine, encode_command
from cairn.store.carve import merge_machines, split_machine
from cairn.store.layout import FIELD_TAG, GARBAGE_TAG, field_prefix, prefix_end
from cairn.store.reclaim import INLINE_RECORDS, RECLAIM_BUDGET, RECLAIM_COMMAND, buried
from cairn.store.scope import range_key

BIG = 200_000
T0 = 1_700_000_000_000


@dataclass
class Touched:
    """Records one apply wrote or deleted, and rows it read by scans."""

    written: int = 0
    scanned: int = 0


def _spy(space: MemoryKeyspace) -> Touched:
    """Count every record `space` commits (put or delete) and every row it scans."""
    touched = Touched()
    put, delete, scan, rscan = space._put, space._delete, space.scan, space.rscan

    def counted_put(k: bytes, v: bytes) -> bytes | None:
        touched.written += 1
        return put(k, v)

    def counted_delete(k: bytes) -> bytes | None:
        touched.written += 1
        return delete(k)

    def counted_scan(start: bytes, end: bytes | None = None, limit: int | None = None) -> object:
        rows = scan(start, end, limit)
        touched.scanned += len(rows)
        return rows

    def counted_rscan(start: bytes, end: bytes | None = None, limit: int | None = None) -> object:
        rows = rscan(start, end, limit)
        touched.scanned += len(rows)
        return rows

    space._put = counted_put  # type: ignore[method-assign]
    space._delete = counted_delete  # type: ignore[method-assign]
    space.scan = counted_scan  # type: ignore[method-assign,assignment]
    space.rscan = counted_rscan  # type: ignore[method-assign,assignment]
    return touched


def _items(*values: bytes) -> bytes:
    """The RESP2 bytes of an array (or set) reply of bulk `values`."""
    return resp2(Array([Bulk(v) for v in values]))


def _records_of(space: MemoryKeyspace, key: bytes) -> int:
    """The F records of every version of `key`, live or buried."""
    prefix = field_prefix(key)
    return len(space.scan(prefix, prefix_end(prefix)))


def _fill_list(client: MachineClient, key: str, size: int, chunk: int = 20_000) -> None:
    for start in range(0, size, chunk):
        values = [b"%d" % i for i in range(start, min(size, start + chunk))]
        client.call("RPUSH", key, *values)


@pytest.fixture(scope="module")
def big_list() -> Iterator[MachineClient]:
    """A machine holding a 200,000-element list `big` and a string `other`."""
    client = MachineClient(clock=FakeClock())
    _fill_list(client, "big", BIG)
    client.call("SET", "other", "x")
    yield client


def test_del_of_a_large_list_is_o1_and_reclaim_is_bounded_per_entry(
    big_list: MachineClient,
) -> None:
    client = big_list
    space = client.machine.keyspace
    assert isinstance(space, MemoryKeyspace)
    touched = _spy(space)
    assert client.call("UNLINK", "big") == Integer(1)
    # The meta, the G record, the key count, the deletion stamp, applied index and time.
    assert touched.written <= 8
    assert touched.scanned <= INLINE_RECORDS + 4
    assert client.call("EXISTS", "big") == Integer(0)
    assert client.call("DBSIZE") == Integer(1)
    assert client.call("LLEN", "big") == Integer(0)
    assert client.call("RPUSH", "big", "new") == Integer(1)
    assert resp2(client.call("LRANGE", "big", "0", "-1")) == _items(b"new")
    assert buried(space, client.machine.scope) == 1
    steps = 0
    while client.machine.has_garbage():
        touched.written = touched.scanned = 0
        reply = client.apply_internal(RECLAIM_COMMAND)
        assert isinstance(reply, Integer) and 0 < reply.value <= RECLAIM_BUDGET
        assert touched.written <= RECLAIM_BUDGET + 2  # + applied index and time
        assert touched.scanned <= RECLAIM_BUDGET + 8
        steps += 1
    assert steps == -(-(BIG + 1) // RECLAIM_BUDGET)
    assert _records_of(space, b"big") == 1  # the new list's one element
    assert space.scan(GARBAGE_TAG, prefix_end(GARBAGE_TAG)) == []
    assert resp2(client.call("LRANGE", "big", "0", "-1")) == _items(b"new")
    assert client.call("DBSIZE") == Integer(2)


def _client_with(*setup: tuple[str, ...]) -> MachineClient:
    client = MachineClient(clock=FakeClock())
    for argv in setup:
        client.call(*argv)
    return client


_MEMBERS = [b"m%04d" % i for i in range(300)]
_PAIRS = [x for i, m in enumerate(_MEMBERS) for x in (b"%d" % i, m)]
_FIELDS = [x for m in _MEMBERS for x in (m, b"v")]

# Each way a large value dies (the last command kills it), and what the key reads then.
DEATHS: dict[str, tuple[list[tuple[bytes | str, ...]], tuple[str, ...], Reply | bytes]] = {
    "set over a list": (
        [("RPUSH", "k", *_MEMBERS), ("SET", "k", "s")],
        ("GET", "k"),
        Bulk(b"s"),
    ),
    "rename onto a set": (
        [("SADD", "k", *_MEMBERS), ("SET", "src", "s"), ("RENAME", "src", "k")],
        ("GET", "k"),
        Bulk(b"s"),
    ),
    "sunionstore onto a zset": (
        [("ZADD", "k", *_PAIRS), ("SADD", "one", "a"), ("SUNIONSTORE", "k", "one")],
        ("SMEMBERS", "k"),
        _items(b"a"),
    ),
    "expiry of a hash": (
        [("HSET", "k", *_FIELDS), ("PEXPIRE", "k", "1"), ("SET", "tick", "1")],
        ("EXISTS", "k"),
        Integer(0),
    ),
    "del of a stream": (
        [*[("XADD", "k", "*", "f", m) for m in _MEMBERS[:100]], ("DEL", "k")],
        ("XLEN", "k"),
        Integer(0),
    ),
}


@pytest.mark.parametrize("death", sorted(DEATHS))
def test_every_way_a_large_value_dies_buries_it_and_a_new_one_starts_empty(death: str) -> None:
    setup, probe, expected = DEATHS[death]
    clock = FakeClock()
    client = MachineClient(clock=clock)
    for argv in setup:
        client.call(*argv)
        clock.now += 5  # past a 1 ms TTL
    reply = client.call(*probe)
    assert (resp2(reply) if isinstance(expected, bytes) else reply) == expected
    if death == "expiry of a hash":  # what buries it: active expiry's delete
        assert client.apply_internal("cairn.expiredel", b"k") == Integer(1)
    assert client.machine.has_garbage()
    client.call("DEL", "k")
    assert client.call("SADD", "k", "fresh") == Integer(1)
    assert resp2(client.call("SMEMBERS", "k")) == _items(b"fresh")
    client.reclaim_all()
    space = client.machine.keyspace
    assert isinstance(space, MemoryKeyspace)
    assert _records_of(space, b"k") == 2  # the new set's member and position records
    assert resp2(client.call("SMEMBERS", "k")) == _items(b"fresh")


def test_a_small_value_is_deleted_at_once_without_a_grave() -> None:
    client = _client_with(("RPUSH", "l", *_MEMBERS[:INLINE_RECORDS]))
    assert client.call("DEL", "l") == Integer(1)
    assert not client.machine.has_garbage()
    space = client.machine.keyspace
    assert isinstance(space, MemoryKeyspace)
    assert _records_of(space, b"l") == 0


def test_many_incarnations_buried_at_once_never_mix() -> None:
    client = MachineClient(clock=FakeClock())
    for round_ in range(3):
        assert client.call("SADD", "s", *[m + b"-%d" % round_ for m in _MEMBERS]) == Integer(300)
        assert client.call("SCARD", "s") == Integer(300)
        assert client.call("DEL", "s") == Integer(1)
    assert buried(client.machine.keyspace, client.machine.scope) == 3
    assert client.call("SADD", "s", "last") == Integer(1)
    assert resp2(client.call("SMEMBERS", "s")) == _items(b"last")
    client.reclaim_all()
    assert resp2(client.call("SMEMBERS", "s")) == _items(b"last")


def test_flushdb_of_a_region_buries_its_large_values() -> None:
    machine = StoreMachine(scope=Scope.region(1))
    index = iter(range(1, 100))

    def write(name: str, *args: bytes) -> Reply:
        return machine.apply(next(index), encode_command(name, list(args), T0))

    write("rpush", b"l", *_MEMBERS)
    write("set", b"s", b"v")
    touched = _spy(machine.keyspace)  # type: ignore[arg-type]
    assert write("flushdb") == OK
    assert touched.written < 20
    assert machine.key_count() == 0
    assert machine.has_garbage()
    while machine.has_garbage():
        write(RECLAIM_COMMAND)
    assert machine.keyspace.scan(FIELD_TAG, prefix_end(FIELD_TAG)) == []


# -- through snapshots, restarts, splits and merges -----------------------------------


def test_reclaim_resumes_from_a_snapshot_taken_halfway() -> None:
    client = MachineClient(clock=FakeClock())
    _fill_list(client, "l", 5 * RECLAIM_BUDGET)
    client.call("DEL", "l")
    client.call("RPUSH", "l", "new")
    client.apply_internal(RECLAIM_COMMAND)
    client.apply_internal(RECLAIM_COMMAND)
    image = client.machine.snapshot()
    restored = MachineClient(clock=FakeClock(), index=client.index)
    restored.machine.restore(image)
    assert restored.machine.has_garbage()
    assert restored.reclaim_all() == 4  # 3 full steps, then the grave alone
    space = restored.machine.keyspace
    assert isinstance(space, MemoryKeyspace)
    assert _records_of(space, b"l") == 1
    assert resp2(restored.call("LRANGE", "l", "0", "-1")) == _items(b"new")


VOTERS = ConfState(voters=(1,))


def test_reclaim_survives_a_restart_on_lmdb(tmp_path: Path) -> None:
    def opened() -> NodeStore:
        return NodeStore.open(tmp_path / "n1", 1, "test", LmdbOptions(map_size=64 << 20))

    node = opened()
    node.create_region(RegionLocalState(1, region=Region(1)), conf_state=VOTERS)
    machine = StoreMachine(node.keyspace, scope=Scope.region(1))
    index = machine.applied_index
    values = [b"%d" % i for i in range(3 * RECLAIM_BUDGET)]
    entries = [
        (index + 1, encode_command("rpush", [b"l", *values], T0)),
        (index + 2, encode_command("del", [b"l"], T0)),
        (index + 3, encode_command(RECLAIM_COMMAND, [], T0)),
    ]
    assert machine.apply_many(entries)[1:] == [Integer(1), Integer(RECLAIM_BUDGET)]
    node.close()
    node = opened()
    machine = StoreMachine(node.keyspace, scope=Scope.region(1))
    assert machine.has_garbage() and machine.key_count() == 0
    replies = []
    while machine.has_garbage():
        index = machine.applied_index + 1
        replies.append(machine.apply(index, encode_command(RECLAIM_COMMAND, [], T0)))
    assert replies == [Integer(RECLAIM_BUDGET), Integer(RECLAIM_BUDGET), Integer(1)]
    prefix = field_prefix(b"l")
    assert node.keyspace.scan(prefix, prefix_end(prefix)) == []
    node.close()


def test_the_graveyard_follows_its_keys_through_a_split_and_a_merge() -> None:
    space = MemoryKeyspace()
    left = StoreMachine(space, scope=Scope.region(1))
    keys = [b"a", b"b", b"c", b"d"]
    split_at = sorted(range_key(k) for k in keys)[2]
    for i, key in enumerate(keys):
        left.apply(2 * i + 1, encode_command("sadd", [key, *_MEMBERS[:150]], T0))
        left.apply(2 * i + 2, encode_command("del", [key], T0))
    assert buried(space, left.scope) == 4
    right = split_machine(left, split_at, 2, index=9, right_index=5)
    assert buried(space, left.scope) == buried(space, right.scope) == 2
    right.apply(6, encode_command(RECLAIM_COMMAND, [], T0))  # 600 records, 2 graves
    assert not right.has_garbage()
    assert buried(space, left.scope) == 2
    merge_machines(right, left, index=10)
    assert buried(space, left.scope) == 2
    left.apply(11, encode_command(RECLAIM_COMMAND, [], T0))
    assert not left.has_garbage()
    assert space.scan(FIELD_TAG, prefix_end(FIELD_TAG)) == []
