"""`LmdbKeyspace` behaves exactly like `cairn.store`'s `MemoryKeyspace`, long keys included."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_helpers import SMALL_MAP

from cairn.storage import DiskFailedError, LmdbEnv, LmdbOptions
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.store.keyspace import Keyspace, MemoryKeyspace, WriteBatch

# Keys from a tiny alphabet, often longer than the (lowered) direct-key limit of 4 bytes,
# so that buckets of long keys sharing a prefix, and short keys next to them, are common.
KEYS = st.binary(max_size=7).map(lambda b: bytes(x % 3 for x in b))
VALUES = st.binary(max_size=12)
BOUNDS = st.none() | KEYS

WRITE = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES),
    st.tuples(st.just("delete"), KEYS, st.none()),
    st.tuples(st.just("clear"), st.none(), st.none()),
)


def open_env(path: Path) -> LmdbEnv:
    """A node environment for the keyspace tests."""
    return LmdbEnv.open(path, 1, "test", LmdbOptions(map_size=SMALL_MAP))


def same_reads(a: Keyspace | WriteBatch, b: Keyspace | WriteBatch, probes: list[bytes]) -> None:
    """Point reads and scans, forwards and backwards, agree between the two; a reverse
    scan is the forward scan's last records, last first."""
    for key in probes:
        assert a.get(key) == b.get(key), key
    for start in probes[:4]:
        for end in (None, *probes[:3]):
            for limit in (None, 0, 1, 3):
                assert a.scan(start, end, limit) == b.scan(start, end, limit), (start, end, limit)
                backwards = a.rscan(start, end, limit)
                assert backwards == b.rscan(start, end, limit), (start, end, limit)
                every = a.scan(start, end)
                assert backwards == every[::-1][: len(every) if limit is None else limit]


def apply(batch: WriteBatch, op: tuple[str, bytes | None, bytes | None]) -> None:
    """Apply one write to a batch."""
    kind, key, value = op
    if kind == "put":
        assert key is not None and value is not None
        batch.put(key, value)
    elif kind == "delete":
        assert key is not None
        batch.delete(key)
    else:
        batch.clear()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.tuples(st.lists(WRITE, max_size=8), st.booleans()), max_size=8),
    probes=st.lists(KEYS, min_size=4, max_size=10),
)
def test_matches_memory_keyspace(
    batches: list[tuple[list[tuple[str, bytes | None, bytes | None]], bool]], probes: list[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = open_env(Path(tmp) / "kv")
        try:
            lmdb_space, memory = LmdbKeyspace(env, limit=4), MemoryKeyspace()
            for ops, keep in batches:
                lb, mb = lmdb_space.begin(), memory.begin()
                for op in ops:
                    apply(lb, op)
                    apply(mb, op)
                same_reads(lb, mb, probes)
                for batch in (lb, mb):
                    batch.commit() if keep else batch.abort()
                same_reads(lmdb_space, memory, probes)
                assert lmdb_space.count() == memory.count()
                assert lmdb_space.scan(b"") == memory.scan(b"")
        finally:
            env.close()


def test_keys_longer_than_lmdb_allows(tmp_path: Path) -> None:
    env = open_env(tmp_path / "kv")
    try:
        space = LmdbKeyspace(env)
        assert space.limit == 510
        base = b"k" * 600
        keys = [base + b"b", base + b"a", base[:510], base[:509] + b"z", b"short", base]
        batch = space.begin()
        for i, key in enumerate(keys):
            batch.put(key, b"%d" % i)
        batch.commit()
        assert [k for k, _ in space.scan(b"")] == sorted(keys)
        assert space.get(base + b"a") == b"1" and space.get(base + b"c") is None
        assert space.count() == len(keys)
        assert [k for k, _ in space.scan(base, base + b"b")] == [base, base + b"a"]
        batch = space.begin()
        batch.delete(base + b"a")
        batch.commit()
        assert space.count() == len(keys) - 1
    finally:
        env.close()


def test_group_commit_nests_batches_in_the_outer_transaction(tmp_path: Path) -> None:
    env = open_env(tmp_path / "kv")
    space = LmdbKeyspace(env)
    with env.write() as wtx, space.group(wtx):
        kept = space.begin()
        kept.put(b"a", b"1")
        kept.commit()
        dropped = space.begin()
        dropped.put(b"b", b"2")
        dropped.abort()
        assert space.get(b"a") == b"1" and space.get(b"b") is None
    env.sync()
    with pytest.raises(RuntimeError), env.write() as wtx, space.group(wtx):
        batch = space.begin()
        batch.put(b"c", b"3")
        batch.commit()
        raise RuntimeError("the node gives up on this Ready")
    env.close()
    env = open_env(tmp_path / "kv")
    try:
        space = LmdbKeyspace(env)
        assert space.scan(b"") == [(b"a", b"1")]
    finally:
        env.close()


def test_one_batch_at_a_time(tmp_path: Path) -> None:
    env = open_env(tmp_path / "kv")
    try:
        space = LmdbKeyspace(env)
        batch = space.begin()
        with pytest.raises(RuntimeError, match="already open"):
            space.begin()
        batch.abort()
        space.begin().commit()
    finally:
        env.close()


def test_disk_full_fails_the_keyspace(tmp_path: Path) -> None:
    env = LmdbEnv.open(tmp_path / "kv", 1, "test", LmdbOptions(map_size=128 << 10))
    try:
        space = LmdbKeyspace(env)
        with pytest.raises(DiskFailedError, match="map is full"):
            for i in range(10_000):
                batch = space.begin()
                batch.put(b"key%d" % i, b"v" * 1000)
                batch.commit()
        batch.abort()
        with pytest.raises(DiskFailedError):
            space.begin()
        assert space.get(b"key0") == b"v" * 1000
    finally:
        env.close()
