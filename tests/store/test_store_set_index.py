"""Sets' position arrays and sorted sets' order-statistics indexes stay exact through every
command that writes them: a set's positions are exactly ``0 .. size - 1``, each position
record and member record naming the other; a sorted set's counts are what its entries call
for (with a fan-out of 2, so a few dozen members reach every level). Random draws from a
big set read one record per member drawn, and pop the seeded position."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient
from test_store_order_index import expected_counts

from cairn.resp.reply import Array, Bulk, Integer, Set
from cairn.store import set_records, zset_records
from cairn.store.commands import COMMANDS, run_in_batch
from cairn.store.db import Db
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.layout import ValueType
from cairn.store.order_index import OrderIndex
from cairn.store.scope import WHOLE_KEYSPACE
from cairn.store.set_records import MEMBER, POSITION, POSITION_END, encode_position

KEYS = [b"{k}s", b"{k}t", b"{k}z", b"{k}y"]
MEMBERS = [b"%c" % c for c in b"abcdefghijklmnopqrstuvwx"] + [b"", b"1", b"22"]


@contextmanager
def narrow_indexes() -> Iterator[None]:
    """The sorted sets' index with a fan-out of 2 and 3 levels (the stored records' shape
    is the same, only more of them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            zset_records,
            "RANKS",
            OrderIndex(zset_records.INDEX, zset_records.INDEX_END, zset_records.COUNTS, 1, 3),
        )
        yield


def check_positions(db: Db, key: bytes, size: int) -> None:
    """Set `key` of `size` members holds exactly the position records ``0 .. size - 1``
    (canonically encoded), each naming a distinct member whose member record names it
    back, and no other record."""
    members = set_records.members(db, key)
    assert len(members) == size, key
    placed = db.fields(key, POSITION, None, POSITION_END)
    assert [f for f, _ in placed] == [POSITION + encode_position(p) for p in range(size)], key
    assert sorted(m for _, m in placed) == members, key
    for field, member in placed:
        assert db.get_field(key, MEMBER + member) == field[len(POSITION) :], (key, member)
    assert len(db.fields(key)) == 2 * size, key  # nothing else under the key
    assert set_records.positions(db, key) == [(p, m) for p, (_, m) in enumerate(placed)]


def check_indexes(client: MachineClient) -> None:
    """Every set's position array is dense and consistent (`check_positions`); every
    sorted set's count records are exactly what its entries call for, its size is its
    entry count, and ranks agree with the order."""
    db = Db(client.machine.keyspace, None, client.clock())
    for key in KEYS:
        meta = db.lookup(key)
        if meta is None:
            assert db.fields(key) == []
            continue
        if meta.type is ValueType.SET:
            check_positions(db, key, meta.size)
            continue
        if meta.type is not ValueType.ZSET:
            continue
        index = zset_records.RANKS
        entries = [f[1:] for f, _ in db.fields(key, index.entries, None, index.entries_end)]
        assert meta.size == len(entries)
        stored = {
            field: struct.unpack(">Q", raw)[0]
            for field, raw in db.fields(key, index.counts, None, bytes([index.counts[0] + 1]))
        }
        assert stored == expected_counts(index, entries), key
        for rank, entry in enumerate(entries):
            assert index.select(db, key, len(entries), rank) == entry


def _member(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(MEMBERS))


@st.composite
def commands(draw: st.DrawFn) -> list[bytes]:
    """One command writing sets or sorted sets (or moving them)."""
    s, t, z, y = KEYS
    some = draw(st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=8))
    n = b"%d" % draw(st.integers(-3, 6))
    score = b"%d" % draw(st.integers(-3, 3))
    choices = [
        [b"SADD", draw(st.sampled_from([s, t])), *some],
        [b"SREM", draw(st.sampled_from([s, t])), *some],
        [b"SPOP", s, b"%d" % draw(st.integers(0, 20))],
        [b"SPOP", draw(st.sampled_from([s, t]))],
        [b"SMOVE", draw(st.sampled_from([s, t])), draw(st.sampled_from([s, t])), _member(draw)],
        [draw(st.sampled_from([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"])), t, s, t],
        [b"ZADD", z, *[a for m in some for a in (score, m)]],
        [b"ZADD", y, b"INCR", score, _member(draw)],
        [b"ZINCRBY", z, score, _member(draw)],
        [b"ZREM", z, *some],
        [draw(st.sampled_from([b"ZPOPMIN", b"ZPOPMAX"])), z, b"2"],
        [b"ZREMRANGEBYRANK", z, n, b"%d" % draw(st.integers(-3, 8))],
        [b"ZREMRANGEBYSCORE", z, b"(0", score],
        [b"ZREMRANGEBYLEX", z, b"[" + _member(draw), b"+"],
        [b"ZUNIONSTORE", y, b"2", z, s],
        [b"ZINTERSTORE", y, b"2", y, z],
        [b"ZDIFFSTORE", y, b"2", y, z],
        [b"ZRANGESTORE", y, z, b"1", n],
        [b"GEOADD", z, b"13.36", b"38.11", _member(draw)],
        [b"RENAME", draw(st.sampled_from([s, z])), draw(st.sampled_from([t, y]))],
        [b"COPY", draw(st.sampled_from([s, z])), draw(st.sampled_from([t, y])), b"REPLACE"],
        [b"RESTORE", draw(st.sampled_from([t, y])), b"0", draw(st.sampled_from([s, z]))],
        [b"DEL", draw(st.sampled_from(KEYS))],
    ]
    return draw(st.sampled_from(choices))


def run(client: MachineClient, argv: list[bytes]) -> None:
    """Run one command; RESTORE's payload argument names the key to DUMP."""
    if argv[0] == b"RESTORE":
        payload = client.call(b"DUMP", argv[3])
        if not isinstance(payload, Bulk):
            return
        argv = [*argv[:3], payload.value, b"REPLACE"]
    client.call(*argv)


@settings(max_examples=30, deadline=None)
@given(st.lists(commands(), max_size=25))
def test_indexes_stay_exact_through_every_writer(script: list[list[bytes]]) -> None:
    with narrow_indexes():
        client = MachineClient(clock=FakeClock())
        client.call(b"SADD", KEYS[0], *MEMBERS[:16])
        client.call(b"ZADD", KEYS[2], *[a for i, m in enumerate(MEMBERS) for a in (b"%d" % i, m)])
        check_indexes(client)
        for argv in script:
            run(client, argv)
            check_indexes(client)


@pytest.mark.usefixtures("narrowed")
def test_ranks_agree_with_the_order() -> None:
    client = MachineClient(clock=FakeClock())
    client.call(b"ZADD", b"z", *[a for i, m in enumerate(MEMBERS) for a in (b"%d" % (i % 5), m)])
    order = client.call(b"ZRANGE", b"z", b"0", b"-1")
    assert isinstance(order, Array)
    ranked = [item.value for item in order.items if isinstance(item, Bulk)]
    for rank, member in enumerate(ranked):
        assert client.call(b"ZRANK", b"z", member) == Integer(rank)
        assert client.call(b"ZREVRANK", b"z", member) == Integer(len(ranked) - 1 - rank)
        assert client.call(b"ZRANGE", b"z", b"%d" % rank, b"%d" % rank) == Array((Bulk(member),))
    in_range = sum(i % 5 in (1, 2) for i in range(len(MEMBERS)))
    assert client.call(b"ZCOUNT", b"z", b"1", b"(3") == Integer(in_range)


@pytest.fixture
def narrowed() -> Iterator[None]:
    with narrow_indexes():
        yield


class _Reads:
    """Counts the sub-records `Db.fields`, `Db.fields_reversed` and `Db.raw_fields` hand
    out (`rows`) and the point reads of `Db.get_field` (`gets`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = self.gets = 0
        for name in ("fields", "fields_reversed", "raw_fields"):
            original = getattr(Db, name)

            def counted(*args: object, _original: object = original, **kw: object) -> object:
                rows = _original(*args, **kw)  # type: ignore[operator]
                self.rows += len(rows)
                return rows

            monkeypatch.setattr(Db, name, counted)
        get_field = Db.get_field

        def got(db: Db, key: bytes, field: bytes) -> bytes | None:
            self.gets += 1
            return get_field(db, key, field)

        monkeypatch.setattr(Db, "get_field", got)

    def reset(self) -> None:
        self.rows = self.gets = 0


def test_draws_from_a_big_set_read_one_record_per_member(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = MachineClient(clock=FakeClock())
    many = [b"m%05d" % i for i in range(12000)]
    client.call(b"SADD", b"s", *many)
    reads = _Reads(monkeypatch)
    seen: set[bytes] = set()
    for _ in range(30):
        reads.reset()
        reply = client.call(b"SRANDMEMBER", b"s")
        assert isinstance(reply, Bulk) and reply.value in many
        seen.add(reply.value)
        assert (reads.rows, reads.gets) == (0, 1)
        reads.reset()
        popped = client.call(b"SPOP", b"s")
        assert isinstance(popped, Bulk)
        assert reads.rows == 0 and reads.gets <= 2  # its position, the last position's
        assert client.call(b"SISMEMBER", b"s", popped.value) == Integer(0)
        many.remove(popped.value)
    assert len(seen) > 25
    reads.reset()
    reply = client.call(b"SRANDMEMBER", b"s", b"-5")
    assert isinstance(reply, Array) and len(reply.items) == 5
    assert reads.rows == 0 and reads.gets <= 5
    reads.reset()
    reply = client.call(b"SPOP", b"s", b"10")
    assert isinstance(reply, Set) and len(reply.items) == 10
    assert reads.rows == 0 and reads.gets <= 20  # the drawn positions, the movers
    assert client.call(b"SCARD", b"s") == Integer(12000 - 40)
    check_positions(Db(client.machine.keyspace, None, client.clock()), b"s", 12000 - 40)


@pytest.mark.parametrize("size", [1, 5, 300])
def test_spop_pops_the_seeded_position_of_the_array(size: int) -> None:
    """A write's SPOP pops the member at position ``Random(seed).randrange(size)`` of the
    position array, `seed` being the entry's log index, and the last position's member
    takes its place: what every replica computes for the same entry. SADD appends in
    argument order."""
    space = MemoryKeyspace()
    order = [b"m%06d" % (i * 7919 % 100_000) for i in range(size)]
    run_in_batch(space, COMMANDS["sadd"], [b"s", *order], 0, WHOLE_KEYSPACE, b"", 1)
    for seed in range(2, 2 + min(size, 30)):
        position = random.Random(seed).randrange(len(order))
        expected = order[position]
        reply = run_in_batch(space, COMMANDS["spop"], [b"s"], 0, WHOLE_KEYSPACE, b"", seed)
        assert reply == Bulk(expected)
        order[position] = order[-1]
        order.pop()
        db = Db(space, None, 0)
        assert [m for _, m in set_records.positions(db, b"s")] == order


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 1 << 70), st.integers(0, 1 << 70))
def test_positions_encode_in_numeric_order(a: int, b: int) -> None:
    encoded = set_records.encode_position(a)
    assert set_records.decode_position(encoded) == a
    assert (encoded < set_records.encode_position(b)) == (a < b)
    assert len(encoded) == 1 + (a.bit_length() + 7) // 8


def test_spop_with_a_count_pops_the_seeded_sample_of_positions() -> None:
    """SPOP with a count pops the members at ``Random(seed).sample(range(size), count)``
    of the position array, in that order, and leaves the array dense."""
    space = MemoryKeyspace()
    order = [b"m%03d" % i for i in range(50)]
    run_in_batch(space, COMMANDS["sadd"], [b"s", *order], 0, WHOLE_KEYSPACE, b"", 1)
    for seed, count in ((2, 3), (3, 20), (4, 1), (5, 25)):
        current = [m for _, m in set_records.positions(Db(space, None, 0), b"s")]
        drawn = random.Random(seed).sample(range(len(current)), count)
        reply = run_in_batch(
            space, COMMANDS["spop"], [b"s", b"%d" % count], 0, WHOLE_KEYSPACE, b"", seed
        )
        assert reply == Set(tuple(Bulk(current[p]) for p in drawn))
        left = len(current) - count
        check_positions(Db(space, None, 0), b"s", left)
        survivors = [m for _, m in set_records.positions(Db(space, None, 0), b"s")]
        assert sorted(survivors) == sorted(set(current) - {current[p] for p in drawn})
        assert all(survivors[p] == current[p] for p in range(left) if p not in drawn)
    assert len(set_records.positions(Db(space, None, 0), b"s")) == 1
