"""Async commit's store half (`cairn.store.txn_locks`, `cairn.store.txn_records`): the lock
record's two versions, prewrite's unchanged marker and secondaries list, the status of an
async primary, and `cairn.txn.check_secondaries` (each state, idempotent retries, hostile
arguments refused before anything is written)."""

from __future__ import annotations

import msgpack
import pytest
from store_harness import FakeClock, MachineClient

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.txn_locks import (
    CHECK_SECONDARIES_COMMAND,
    COMMIT_COMMAND,
    LOCK_COMMAND,
    PREWRITE_COMMAND,
    ROLLBACK_COMMAND,
    STATUS_COMMAND,
    TXN_LOCK_COMMANDS,
    read_lock,
)
from cairn.store.txn_records import KIND_UNCHANGED, Lock, decode_lock

T0 = 1_700_000_000_000
TS = 1000 << 18


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def client(clock: FakeClock) -> MachineClient:
    return MachineClient(clock=clock)


def _n(value: int) -> bytes:
    return b"%d" % value


def lock(c: MachineClient, primary: bytes, *keys: bytes, ttl: int = 3000) -> Reply:
    return c.apply_internal(LOCK_COMMAND, _n(TS), primary, _n(ttl), _n(1 << 20), b"0", *keys)


def prewrite(c: MachineClient, effects: list[tuple[bytes, int, bytes]], *tail: bytes) -> Reply:
    args = [_n(TS), _n(len(effects))]
    for key, kind, payload in effects:
        args += [key, _n(kind), b"0", payload]
    return c.apply_internal(PREWRITE_COMMAND, *args, *tail)


def check(c: MachineClient, *args: bytes) -> Reply:
    return c.apply_internal(CHECK_SECONDARIES_COMMAND, *args)


def states(*words: bytes) -> Array:
    return Array((Bulk(b"ok"), Array(tuple(Bulk(w) for w in words))))


def records(c: MachineClient) -> dict[bytes, bytes]:
    rows = c.machine.keyspace.scan(b"", None, None)
    return {k: v for k, v in rows if not k.startswith(b"X")}


def dump(c: MachineClient, key: str) -> bytes:
    got = c.call("dump", key)
    assert isinstance(got, Bulk)
    return got.value


# -- the lock record ----------------------------------------------------------------------


def test_a_two_phase_lock_keeps_version_1_byte_for_byte() -> None:
    plain = Lock(TS, b"p", 3000, T0, (1, 5, b"dump"))
    old = msgpack.packb([1, TS, b"p", 3000, T0, [1, 5, b"dump"]], use_bin_type=True)
    assert plain.encode() == old and decode_lock(old) == plain
    assert decode_lock(Lock(TS, b"p", 3000, T0).encode()) == Lock(TS, b"p", 3000, T0)


def test_the_unchanged_marker_and_secondaries_need_version_2() -> None:
    marked = Lock(TS, b"p", 3000, T0, (KIND_UNCHANGED, 0, b""), (b"x", b"y"))
    raw = marked.encode()
    assert msgpack.unpackb(raw)[0] == 2
    assert decode_lock(raw) == marked and marked.prewritten and marked.is_async
    only_marker = Lock(TS, b"p", 3000, T0, (KIND_UNCHANGED, 0, b""))
    assert decode_lock(only_marker.encode()) == only_marker and not only_marker.is_async
    assert not Lock(TS, b"p", 3000, T0).prewritten


@pytest.mark.parametrize(
    "fields",
    [
        [2, TS, b"p", 3000, T0, None],  # version 2 with six fields
        [1, TS, b"p", 3000, T0, None, None],  # version 1 with seven
        [2, TS, b"p", 3000, T0, None, [b"x", 5]],  # a secondary that is not bytes
        [2, TS, b"p", 3000, T0, [7, 0, b""], None],  # an unknown kind
        [3, TS, b"p", 3000, T0, None, None],
        "not a list",
    ],
)
def test_malformed_lock_records_are_refused(fields: object) -> None:
    with pytest.raises(ValueError):
        decode_lock(msgpack.packb(fields, use_bin_type=True))


# -- prewrite -----------------------------------------------------------------------------


def test_prewrite_stores_the_marker_and_the_secondaries_in_the_primary(
    client: MachineClient,
) -> None:
    client.call("set", "r", "kept")
    locked = lock(client, b"p", b"p", b"r", b"w")
    assert isinstance(locked, Array) and locked.items[0] == Bulk(b"ok")
    client.call("set", "tmp", "new")
    effects = [(b"p", 1, dump(client, "tmp")), (b"r", KIND_UNCHANGED, b"junk"), (b"w", 0, b"")]
    tail = [b"3", b"x", b"y", b"r"]
    assert prewrite(client, effects, *tail) == Array((Bulk(b"ok"),))
    primary = read_lock(client.machine.keyspace, b"p")
    read = read_lock(client.machine.keyspace, b"r")
    assert primary is not None and read is not None
    assert primary.secondaries == (b"x", b"y", b"r") and primary.effect is not None
    assert read.effect == (KIND_UNCHANGED, 0, b"") and read.secondaries is None
    before = records(client)
    assert prewrite(client, effects, *tail) == Array((Bulk(b"ok"),))  # a retry
    assert records(client) == before
    assert client.apply_internal(COMMIT_COMMAND, _n(TS), _n(TS), b"1", b"p", b"r", b"w") == Array(
        (Bulk(b"ok"),)
    )
    assert client.call("get", "p") == Bulk(b"new")
    assert client.call("get", "r") == Bulk(b"kept")  # unchanged: nothing applied
    assert client.call("exists", "w") == Integer(0)


def test_the_secondaries_go_only_with_the_primary_first(client: MachineClient) -> None:
    lock(client, b"p", b"p", b"s")
    before = records(client)
    got = prewrite(client, [(b"s", KIND_UNCHANGED, b""), (b"p", 0, b"")], b"1", b"x")
    assert isinstance(got, ErrorReply) and "primary" in got.message
    assert records(client) == before


@pytest.mark.parametrize(
    "tail",
    [
        [b"2", b"x"],  # fewer secondaries than counted
        [b"1", b"x", b"y"],  # more
        [b"-1"],
        [b"99999999999999999999"],
        [b"x"],
        [b"70000", *([b"k"] * 69999)],  # a count past MAX_SECONDARIES with too few keys
    ],
)
def test_hostile_secondaries_are_refused_before_anything_is_written(
    client: MachineClient, tail: list[bytes]
) -> None:
    lock(client, b"p", b"p")
    before = records(client)
    got = prewrite(client, [(b"p", KIND_UNCHANGED, b"")], *tail)
    assert isinstance(got, ErrorReply), got
    assert records(client) == before


def test_a_kind_past_the_marker_is_refused(client: MachineClient) -> None:
    lock(client, b"p", b"p")
    assert isinstance(prewrite(client, [(b"p", 3, b"")]), ErrorReply)


def test_prewrite_routes_by_its_effect_keys_never_by_the_secondaries() -> None:
    spec = TXN_LOCK_COMMANDS[PREWRITE_COMMAND]
    argv = [PREWRITE_COMMAND.encode(), _n(TS), b"1", b"p", b"2", b"0", b"", b"3", b"a", b"b", b"c"]
    assert spec.keys(argv) == [b"p"]
    assert spec.keys([PREWRITE_COMMAND.encode(), _n(TS), b"5", b"p"]) == []


# -- status and check_secondaries ---------------------------------------------------------


def test_an_async_primary_is_never_rolled_back_by_status(
    client: MachineClient, clock: FakeClock
) -> None:
    lock(client, b"p", b"p", ttl=100)
    prewrite(client, [(b"p", KIND_UNCHANGED, b"")], b"2", b"s1", b"s2")
    listed = Array((Bulk(b"s1"), Bulk(b"s2")))
    assert client.apply_internal(STATUS_COMMAND, b"p", _n(TS)) == Array(
        (Bulk(b"async"), Integer(100), listed)
    )
    clock.now += 1000  # long expired: still undecided, its secondaries decide
    assert client.apply_internal(STATUS_COMMAND, b"p", _n(TS)) == Array(
        (Bulk(b"async"), Integer(0), listed)
    )
    assert read_lock(client.machine.keyspace, b"p") is not None


def test_check_reports_each_state_and_rolls_back_a_lock_not_prewritten(
    client: MachineClient,
) -> None:
    lock(client, b"p", b"p", b"done", b"late")
    prewrite(client, [(b"done", KIND_UNCHANGED, b"")])
    got = check(client, _n(TS), b"done", b"late", b"never", b"late")
    assert got == states(b"prewritten", b"rolledback", b"missing", b"rolledback")
    assert read_lock(client.machine.keyspace, b"late") is None
    assert prewrite(client, [(b"late", 0, b"")]) == Array((Bulk(b"lost"), Bulk(b"late")))
    before = records(client)
    again = check(client, _n(TS), b"done", b"late", b"never")  # a retry of the check
    assert again == states(b"prewritten", b"missing", b"missing")
    assert records(client) == before


def test_check_sees_another_transactions_lock_as_missing_and_leaves_it(
    client: MachineClient,
) -> None:
    lock(client, b"p", b"k")
    before = records(client)
    assert check(client, _n(TS + 1), b"k") == states(b"missing")
    assert records(client) == before


@pytest.mark.parametrize(
    "args",
    [
        [_n(TS)],
        [b"x", b"k"],
        [b"-1", b"k"],
        [b"9" * 20, b"k"],
        [b"", b"k"],
        [_n(TS), *[b"k%d" % i for i in range(65537)]],  # more keys than any primary lists
    ],
)
def test_hostile_checks_are_refused(client: MachineClient, args: list[bytes]) -> None:
    lock(client, b"p", b"k")
    before = records(client)
    got = check(client, *args)
    assert isinstance(got, ErrorReply), got
    assert records(client) == before


def test_the_check_routes_by_its_keys() -> None:
    spec = TXN_LOCK_COMMANDS[CHECK_SECONDARIES_COMMAND]
    argv = [CHECK_SECONDARIES_COMMAND.encode(), _n(TS), b"a", b"b"]
    assert spec.keys(argv) == [b"a", b"b"]


def test_commit_and_rollback_still_decide_once_at_the_primary(client: MachineClient) -> None:
    """A rollback finding the async primary committed answers `committed`; a commit
    finding it rolled back answers `rolledback`."""
    lock(client, b"p", b"p")
    prewrite(client, [(b"p", KIND_UNCHANGED, b"")], b"1", b"s")
    assert client.apply_internal(COMMIT_COMMAND, _n(TS), _n(TS), b"1", b"p") == Array(
        (Bulk(b"ok"),)
    )
    assert client.apply_internal(ROLLBACK_COMMAND, _n(TS), b"1", b"p") == Array(
        (Bulk(b"committed"), Integer(TS))
    )
    other = TS + 7
    client.apply_internal(LOCK_COMMAND, _n(other), b"q", b"3000", _n(1 << 20), b"0", b"q")
    assert client.apply_internal(ROLLBACK_COMMAND, _n(other), b"1", b"q") == Array((Bulk(b"ok"),))
    assert client.apply_internal(COMMIT_COMMAND, _n(other), _n(other), b"1", b"q") == Array(
        (Bulk(b"rolledback"),)
    )
