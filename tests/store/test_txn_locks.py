"""The internal commands of cross-region transactions (`cairn.store.txn_locks`): every reply
branch of lock, prewrite, commit, rollback and status, the -LOCKED check on client
commands, active expiry leaving locked keys alone, and the status records' GC."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from store_harness import FakeClock, MachineClient

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, NullBulk, Reply
from cairn.store import StoreMachine, encode_command
from cairn.store.commands import EXPIRE_DELETE
from cairn.store.idempotency import tag_command
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.layout import lock_key, status_key
from cairn.store.scope import WHOLE_KEYSPACE
from cairn.store.transaction import TXN_COMMAND, WATCH_COMMAND, encode_transaction
from cairn.store.txn_locks import (
    COMMIT_COMMAND,
    GC_COMMAND,
    LOCK_COMMAND,
    PREWRITE_COMMAND,
    ROLLBACK_COMMAND,
    STATUS_COMMAND,
    read_lock,
    read_status,
    stale_statuses,
)

T0 = 1_700_000_000_000
TS = 1000 << 18
OTHER = 2000 << 18


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def client(clock: FakeClock) -> MachineClient:
    return MachineClient(clock=clock)


def _n(value: int) -> bytes:
    return b"%d" % value


def lock(
    c: MachineClient,
    ts: int,
    primary: bytes,
    keys: Sequence[bytes],
    watches: Sequence[tuple[bytes, bytes]] = (),
    ttl: int = 3000,
    max_bytes: int = 1 << 20,
) -> Reply:
    flat = [part for pair in watches for part in pair]
    args = [_n(ts), primary, _n(ttl), _n(max_bytes), _n(len(watches)), *flat, *keys]
    return c.apply_internal(LOCK_COMMAND, *args)


def prewrite(c: MachineClient, ts: int, effects: Sequence[tuple[bytes, int, int, bytes]]) -> Reply:
    args = [_n(ts), _n(len(effects))]
    for key, kind, pexpireat, payload in effects:
        args += [key, _n(kind), _n(pexpireat), payload]
    return c.apply_internal(PREWRITE_COMMAND, *args)


def commit(c: MachineClient, ts: int, commit_ts: int, primary: bool, *keys: bytes) -> Reply:
    return c.apply_internal(COMMIT_COMMAND, _n(ts), _n(commit_ts), _n(primary), *keys)


def rollback(c: MachineClient, ts: int, primary: bool, *keys: bytes) -> Reply:
    return c.apply_internal(ROLLBACK_COMMAND, _n(ts), _n(primary), *keys)


def status(c: MachineClient, primary: bytes, ts: int) -> Reply:
    return c.apply_internal(STATUS_COMMAND, primary, _n(ts))


def reply(*items: Reply | bytes | int) -> Array:
    """An array reply: bytes as bulks, ints as integers."""
    out: list[Reply] = []
    for item in items:
        if isinstance(item, bytes):
            out.append(Bulk(item))
        elif isinstance(item, int):
            out.append(Integer(item))
        else:
            out.append(item)
    return Array(tuple(out))


def records(c: MachineClient) -> dict[bytes, bytes]:
    """Every record but the machine's progress ones (applied index, time)."""
    rows = c.machine.keyspace.scan(b"", None, None)
    return {k: v for k, v in rows if not k.startswith(b"X")}


def dump(c: MachineClient, key: bytes) -> bytes:
    got = c.call("dump", key)
    assert isinstance(got, Bulk)
    return got.value


def locked_error(ts: int, remaining: int, primary: bytes, key: bytes) -> ErrorReply:
    return ErrorReply(f"LOCKED {ts} {remaining} {primary.hex()} {key.hex()}")


# -- cairn.txn.lock -------------------------------------------------------------------------


def test_lock_reads_every_key_and_locks_it(client: MachineClient, clock: FakeClock) -> None:
    client.call("set", "a", "1")
    client.call("pexpireat", "a", str(T0 + 50_000))
    client.call("rpush", "l", "x")
    client.call("set", "gone", "v", "px", "10")
    string_dump, list_dump = dump(client, b"a"), dump(client, b"l")
    clock.now += 20
    got = lock(client, TS, b"a", [b"a", b"l", b"none", b"gone", b"a"])
    absent = reply(0, 0, NULL)
    assert got == reply(
        b"ok",
        reply(
            reply(1, T0 + 50_000, string_dump),
            reply(1, 0, list_dump),
            absent,
            absent,  # expired: absent
            reply(1, T0 + 50_000, string_dump),
        ),
    )
    held = read_lock(client.machine.keyspace, b"none")
    assert held is not None
    assert (held.start_ts, held.primary, held.ttl_ms, held.locked_at_ms) == (
        TS,
        b"a",
        3000,
        clock.now,
    )
    assert held.effect is None
    assert read_lock(client.machine.keyspace, b"gone") is not None


def test_a_lock_held_by_another_transaction_refuses_and_writes_nothing(
    client: MachineClient, clock: FakeClock
) -> None:
    assert lock(client, OTHER, b"p", [b"p", b"b"], ttl=1000) == reply(
        b"ok", reply(NULL_VALUE, NULL_VALUE)
    )
    before = records(client)
    clock.now += 400
    assert lock(client, TS, b"a", [b"a", b"b"]) == reply(b"locked", b"b", b"p", OTHER, 600)
    assert records(client) == before
    clock.now += 5000
    assert lock(client, TS, b"a", [b"a", b"b"]) == reply(b"locked", b"b", b"p", OTHER, 0)
    assert records(client) == before


NULL_VALUE = reply(0, 0, NULL)


def test_a_retried_lock_is_idempotent(client: MachineClient, clock: FakeClock) -> None:
    first = lock(client, TS, b"a", [b"a", b"b"])
    before = records(client)
    clock.now += 100
    assert lock(client, TS, b"a", [b"a", b"b"]) == first
    assert records(client) == before  # the lock kept as is: its time unchanged


def test_a_changed_watched_key_refuses(client: MachineClient) -> None:
    client.call("set", "w", "1")
    fingerprint = client.apply_internal(WATCH_COMMAND, b"w")
    assert isinstance(fingerprint, Array) and isinstance(fingerprint.items[0], Bulk)
    recorded = fingerprint.items[0].value
    client.call("set", "w", "2")
    before = records(client)
    assert lock(client, TS, b"a", [b"a"], watches=[(b"w", recorded)]) == reply(b"watch")
    assert records(client) == before
    fresh = client.apply_internal(WATCH_COMMAND, b"w")
    assert isinstance(fresh, Array) and isinstance(fresh.items[0], Bulk)
    value = dump(client, b"w")
    got = lock(client, TS, b"a", [b"a", b"w"], watches=[(b"w", fresh.items[0].value)])
    assert got == reply(b"ok", reply(NULL_VALUE, reply(1, 0, value)))
    assert read_lock(client.machine.keyspace, b"w") is not None  # in both lists: one lock


def test_a_watched_only_key_is_locked_without_a_value(client: MachineClient) -> None:
    fingerprint = client.apply_internal(WATCH_COMMAND, b"w")
    assert isinstance(fingerprint, Array) and isinstance(fingerprint.items[0], Bulk)
    got = lock(client, TS, b"a", [b"a"], watches=[(b"w", fingerprint.items[0].value)])
    assert got == reply(b"ok", reply(NULL_VALUE))
    assert read_lock(client.machine.keyspace, b"w") is not None


def test_a_rolled_back_transaction_cannot_lock_its_primary(client: MachineClient) -> None:
    assert rollback(client, TS, True, b"a") == reply(b"ok")
    before = records(client)
    assert lock(client, TS, b"a", [b"a", b"b"]) == reply(b"rolledback")
    assert records(client) == before
    # a region without the primary does not know: it locks (the primary's refusal decides)
    assert lock(client, TS, b"a", [b"b"]) == reply(b"ok", reply(NULL_VALUE))


def test_values_beyond_max_bytes_refuse(client: MachineClient) -> None:
    client.call("set", "a", "x" * 100)
    client.call("set", "b", "y" * 100)
    size = len(dump(client, b"a"))
    before = records(client)
    assert lock(client, TS, b"a", [b"a", b"b"], max_bytes=2 * size - 1) == reply(b"toolarge")
    assert records(client) == before
    assert lock(client, TS, b"a", [b"a", b"b"], max_bytes=2 * size) != reply(b"toolarge")


@pytest.mark.parametrize(
    "args",
    [
        [b"x", b"a", b"1", b"1", b"0", b"a"],
        [b"-1", b"a", b"1", b"1", b"0", b"a"],
        [b"1", b"a", b"1", b"1", b"0"],  # no key
        [b"1", b"a", b"1", b"1", b"2", b"w", b"f", b"a"],  # nwatch past the arguments
        [b"99999999999999999999", b"a", b"1", b"1", b"0", b"a"],
        [b"9223372036854775808", b"a", b"1", b"1", b"0", b"a"],
        [b"1", b"a", b"4294967296", b"1", b"0", b"a"],  # a ttl past 2^32 ms
    ],
)
def test_malformed_lock_arguments_are_refused(client: MachineClient, args: list[bytes]) -> None:
    got = client.apply_internal(LOCK_COMMAND, *args)
    assert isinstance(got, ErrorReply) and got.message.startswith("ERR ")
    assert records(client) == {}


# -- cairn.txn.prewrite ---------------------------------------------------------------------


def test_prewrite_stores_the_effects_in_the_locks(client: MachineClient) -> None:
    client.call("set", "src", "v")
    payload = dump(client, b"src")
    lock(client, TS, b"a", [b"a", b"b", b"c"])
    assert prewrite(client, TS, [(b"a", 1, T0 + 9000, payload), (b"b", 0, 0, b"")]) == reply(b"ok")
    space = client.machine.keyspace
    got_a, got_b, got_c = (read_lock(space, k) for k in (b"a", b"b", b"c"))
    assert got_a is not None and got_a.effect == (1, T0 + 9000, payload)
    assert got_b is not None and got_b.effect == (0, 0, b"")
    assert got_c is not None and got_c.effect is None


def test_prewrite_of_a_lost_lock_writes_nothing(client: MachineClient) -> None:
    client.call("set", "src", "v")
    payload = dump(client, b"src")
    lock(client, TS, b"a", [b"a"])
    lock(client, OTHER, b"o", [b"o"])
    before = records(client)
    effects = [(b"a", 1, 0, payload), (b"o", 0, 0, b""), (b"n", 0, 0, b"")]
    assert prewrite(client, TS, effects) == reply(b"lost", b"o")
    assert records(client) == before
    assert prewrite(client, TS, [(b"a", 0, 0, b""), (b"n", 0, 0, b"")]) == reply(b"lost", b"n")
    assert records(client) == before


def test_prewrite_refuses_a_payload_restore_would_refuse(client: MachineClient) -> None:
    lock(client, TS, b"a", [b"a"])
    before = records(client)
    got = prewrite(client, TS, [(b"a", 1, 0, b"not a dump payload")])
    assert got == ErrorReply("ERR DUMP payload version or checksum are wrong")
    assert isinstance(prewrite(client, TS, [(b"a", 3, 0, b"")]), ErrorReply)  # 2: unchanged
    assert records(client) == before


# -- cairn.txn.commit -----------------------------------------------------------------------


def _every_type(c: MachineClient) -> dict[bytes, bytes]:
    """A key of each type, with its DUMP."""
    c.call("set", "s", "string value")
    c.call("hset", "h", "f1", "v1", "f2", "v2")
    c.call("rpush", "l", "a", "b", "c")
    c.call("sadd", "set", "m1", "m2", "3")
    c.call("zadd", "z", "1.5", "one", "2", "two")
    c.call("xadd", "x", "1-1", "f", "v")
    c.call("xadd", "x", "2-1", "g", "w")
    c.call("xgroup", "create", "x", "grp", "0")
    return {key: dump(c, key) for key in (b"s", b"h", b"l", b"set", b"z", b"x")}


def test_commit_applies_a_dump_of_every_type_with_its_expiry(clock: FakeClock) -> None:
    source = MachineClient(clock=clock)
    dumps = _every_type(source)
    target = MachineClient(clock=clock)
    target.call("set", "h", "old string")  # replaced, whatever its type
    target.call("set", "dead", "v")
    keys = [*dumps, b"dead"]
    lock(target, TS, b"s", keys)
    expire_at = T0 + 100_000
    effects = [(key, 1, expire_at, payload) for key, payload in dumps.items()]
    assert prewrite(target, TS, [*effects, (b"dead", 0, 0, b"")]) == reply(b"ok")
    watched = target.apply_internal(WATCH_COMMAND, *keys)
    target.machine.collect_events = True
    assert commit(target, TS, TS + 5, True, *keys) == reply(b"ok")
    events = target.machine.take_events(target.index)
    for key, payload in dumps.items():
        assert dump(target, key) == payload
        assert target.call("pexpiretime", key) == Integer(expire_at)
    assert target.call("exists", "dead") == Integer(0)
    assert target.call("dbsize") == Integer(len(dumps))
    assert target.call("xinfo", "groups", "x") == source.call("xinfo", "groups", "x")
    assert target.apply_internal(WATCH_COMMAND, *keys) != watched  # stamped
    assert (4, "del", b"dead") in [(c & 4, e, k) for c, e, k in events]
    assert {k for _, e, k in events if e == "restore"} == set(dumps)
    assert all(read_lock(target.machine.keyspace, k) is None for k in keys)
    got = read_status(target.machine.keyspace, b"s", TS)
    assert got is not None and (got.state, got.commit_ts, got.at_ms) == (1, TS + 5, clock.now)


def test_a_past_expiry_commits_as_restore_does(client: MachineClient, clock: FakeClock) -> None:
    client.call("set", "k", "old")
    payload = dump(client, b"k")
    lock(client, TS, b"k", [b"k"])
    prewrite(client, TS, [(b"k", 1, clock.now - 1, payload)])
    assert commit(client, TS, TS + 1, True, b"k") == reply(b"ok")
    assert client.call("exists", "k") == Integer(0)


def test_commit_of_a_secondary_skips_keys_no_longer_locked(client: MachineClient) -> None:
    client.call("set", "src", "new")
    payload = dump(client, b"src")
    lock(client, TS, b"p", [b"a", b"b"])
    prewrite(client, TS, [(b"a", 1, 0, payload), (b"b", 1, 0, payload)])
    rollback(client, TS, False, b"b")  # b's lock was resolved away
    lock(client, OTHER, b"q", [b"b"])
    assert commit(client, TS, TS + 1, False, b"a", b"b") == reply(b"ok")
    assert client.call("get", "a") == Bulk(b"new")
    held = read_lock(client.machine.keyspace, b"b")
    assert held is not None and held.start_ts == OTHER
    assert read_status(client.machine.keyspace, b"a", TS) is None  # not the primary
    assert commit(client, TS, TS + 1, False, b"a") == reply(b"ok")  # a retry: nothing left


def test_commit_without_the_primary_lock(client: MachineClient) -> None:
    lock(client, TS, b"p", [b"p"])
    assert commit(client, TS, TS + 1, True, b"p") == reply(b"ok")
    before = records(client)
    assert commit(client, TS, TS + 1, True, b"p") == reply(b"ok")  # a retry
    assert records(client) == before
    lock(client, OTHER, b"q", [b"q", b"x"])
    rollback(client, OTHER, True, b"q")
    lock(client, OTHER + 1, b"x", [b"x"])
    before = records(client)
    assert commit(client, OTHER, OTHER + 2, True, b"q", b"x") == reply(b"rolledback")
    assert commit(client, 77, 78, True, b"never") == reply(b"rolledback")
    assert records(client) == before


# -- cairn.txn.rollback ---------------------------------------------------------------------


def test_rollback_drops_the_locks_and_marks_the_primary(
    client: MachineClient, clock: FakeClock
) -> None:
    lock(client, TS, b"p", [b"p", b"a"])
    lock(client, OTHER, b"q", [b"b"])
    assert rollback(client, TS, True, b"p", b"a", b"b") == reply(b"ok")
    space = client.machine.keyspace
    assert read_lock(space, b"p") is None and read_lock(space, b"a") is None
    assert read_lock(space, b"b") is not None  # another transaction's
    got = read_status(space, b"p", TS)
    assert got is not None and (got.state, got.commit_ts, got.at_ms) == (2, 0, clock.now)
    before = records(client)
    clock.now += 10
    assert rollback(client, TS, True, b"p") == reply(b"ok")
    assert records(client) == before  # the first decision's time is kept


def test_rollback_of_a_committed_transaction_refuses(client: MachineClient) -> None:
    lock(client, TS, b"p", [b"p", b"a"])
    commit(client, TS, TS + 9, True, b"p")
    before = records(client)
    assert rollback(client, TS, True, b"p", b"a") == reply(b"committed", TS + 9)
    assert records(client) == before
    assert rollback(client, TS, False, b"a") == reply(b"ok")  # a secondary's locks go
    assert read_lock(client.machine.keyspace, b"a") is None


# -- cairn.txn.status -----------------------------------------------------------------------


def test_status_of_decided_transactions(client: MachineClient) -> None:
    lock(client, TS, b"p", [b"p"])
    commit(client, TS, TS + 3, True, b"p")
    rollback(client, OTHER, True, b"q")
    before = records(client)
    assert status(client, b"p", TS) == reply(b"committed", TS + 3)
    assert status(client, b"q", OTHER) == reply(b"rolledback", 0)
    assert records(client) == before


def test_status_of_a_live_lock_then_an_expired_one(client: MachineClient, clock: FakeClock) -> None:
    lock(client, TS, b"p", [b"p"], ttl=1000)
    clock.now += 300
    assert status(client, b"p", TS) == reply(b"alive", 700)
    clock.now += 700
    assert status(client, b"p", TS) == reply(b"rolledback", 0)
    assert read_lock(client.machine.keyspace, b"p") is None
    got = read_status(client.machine.keyspace, b"p", TS)
    assert got is not None and got.state == 2
    assert lock(client, TS, b"p", [b"p"]) == reply(b"rolledback")  # a late lock


def test_status_of_an_unknown_transaction_rolls_it_back(client: MachineClient) -> None:
    lock(client, OTHER, b"p", [b"p"])  # another transaction's lock on the primary
    assert status(client, b"p", TS) == reply(b"rolledback", 0)
    got = read_status(client.machine.keyspace, b"p", TS)
    assert got is not None and got.state == 2
    held = read_lock(client.machine.keyspace, b"p")
    assert held is not None and held.start_ts == OTHER


# -- the lock check --------------------------------------------------------------------------


def test_locked_keys_answer_locked_to_every_client_command(
    client: MachineClient, clock: FakeClock
) -> None:
    client.call("set", "k", "v")
    lock(client, TS, b"prim", [b"k"], ttl=2000)
    clock.now += 500
    expected = locked_error(TS, 1500, b"prim", b"k")
    before = records(client)
    assert client.call("get", "k") == expected
    assert client.call("set", "k", "w") == expected
    assert client.call("mset", "free", "1", "k", "w") == expected
    assert client.call("eval", "return 1", "1", "k") == expected
    assert client.apply_internal(WATCH_COMMAND, b"k") == expected
    txn = encode_transaction([], [[b"set", b"free", b"1"], [b"get", b"k"]])
    assert client.apply_internal(TXN_COMMAND, txn) == expected
    tagged = tag_command([b"IDEMPOTENT", b"id1", b"set", b"k", b"w"], 60_000, 100)
    assert not isinstance(tagged, ErrorReply)
    assert client.apply_internal(tagged[0][0].decode(), *tagged[0][1:]) == expected
    assert records(client) == before
    assert client.call("set", "free", "1") == OK  # other keys are not locked
    assert commit(client, TS, TS + 1, False, b"k") == reply(b"ok")  # no effect: unchanged
    assert client.call("get", "k") == Bulk(b"v")


def test_active_expiry_leaves_a_locked_key_alone(client: MachineClient, clock: FakeClock) -> None:
    client.call("set", "k", "v", "px", "100")
    client.call("set", "j", "v", "px", "100")
    lock(client, TS, b"k", [b"k"])
    clock.now += 200
    assert client.machine.expired_keys(clock.now, 10) == [b"j"]  # k is not proposed...
    assert client.apply_internal(EXPIRE_DELETE, b"j", b"k") == Integer(1)  # ...nor deleted
    assert client.machine.key_count() == 1
    rollback(client, TS, True, b"k")
    assert client.apply_internal(EXPIRE_DELETE, b"k") == Integer(1)


# -- status GC --------------------------------------------------------------------------------


def test_stale_status_records_are_found_and_deleted(
    client: MachineClient, clock: FakeClock
) -> None:
    for i in range(5):
        rollback(client, TS + i, True, b"p%d" % i)
    clock.now += 1000
    rollback(client, OTHER, True, b"fresh")
    space = client.machine.keyspace
    stale, position = stale_statuses(space, WHOLE_KEYSPACE, clock.now, 1000, b"", limit=3)
    assert len(stale) == 3 and position
    more, position = stale_statuses(space, WHOLE_KEYSPACE, clock.now, 1000, position, limit=3)
    assert len(more) == 2 and position == b""
    assert set(stale + more) == {(b"p%d" % i, TS + i) for i in range(5)}
    args = [b"1000"] + [
        part for p, ts in stale + more + [(b"fresh", OTHER)] for part in (p, _n(ts))
    ]
    assert client.apply_internal(GC_COMMAND, *args) == Integer(5)
    assert list(records(client)) == [status_key(b"fresh", OTHER)]
    assert client.apply_internal(GC_COMMAND, *args) == Integer(0)


def test_the_status_gc_is_bounded(client: MachineClient) -> None:
    args = [b"0"] + [b"k", b"1"] * 257
    assert isinstance(client.apply_internal(GC_COMMAND, *args), ErrorReply)


def test_lock_records_sit_under_their_key() -> None:
    machine = StoreMachine(MemoryKeyspace())
    c = MachineClient(clock=lambda: T0, machine=machine)
    lock(c, TS, b"p", [b"{tag}k"])
    assert machine.keyspace.get(lock_key(b"{tag}k")) is not None
    assert isinstance(c.call("get", "{tag}k"), ErrorReply)
    assert c.call("get", "{tag}other") == NullBulk()


def test_a_lock_applies_to_the_next_entry_of_the_same_batch() -> None:
    machine = StoreMachine(MemoryKeyspace())
    lock_args = [_n(TS), b"k", b"3000", b"100", b"0", b"k"]
    replies = machine.apply_many(
        [
            (1, encode_command("set", [b"k", b"1"], T0)),
            (2, encode_command(LOCK_COMMAND, lock_args, T0)),
            (3, encode_command("set", [b"k", b"2"], T0)),
            (4, encode_command(ROLLBACK_COMMAND, [_n(TS), b"1", b"k"], T0)),
            (5, encode_command("set", [b"k", b"3"], T0)),
        ]
    )
    assert replies[2] == locked_error(TS, 3000, b"k", b"k")
    assert replies[4] == OK
    assert machine.execute_read("get", [b"k"], T0) == Bulk(b"3")


def test_commit_buries_large_values_it_replaces_or_deletes(client: MachineClient) -> None:
    client.call("set", "src", "small")
    payload = dump(client, b"src")
    for key in ("big1", "big2"):
        client.call("rpush", key, *[str(i) for i in range(100)])
    lock(client, TS, b"big1", [b"big1", b"big2"])
    prewrite(client, TS, [(b"big1", 1, 0, payload), (b"big2", 0, 0, b"")])
    assert not client.machine.has_garbage()
    assert commit(client, TS, TS + 1, True, b"big1", b"big2") == reply(b"ok")
    assert client.machine.has_garbage()  # both lists buried, reclaimed in the background
    assert client.call("get", "big1") == Bulk(b"small")
    assert client.call("exists", "big2") == Integer(0)
    assert client.reclaim_all() > 0
    assert client.call("dbsize") == Integer(2)
