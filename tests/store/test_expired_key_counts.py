"""A key whose expiry has passed but whose record is still stored (counted, not yet
purged), written again: the region's key count, its slot's count (CLUSTER
COUNTKEYSINSLOT) and DBSIZE count it once, as a plain SET does, on every path that
writes it: a tagged script's effects (`cairn.store.idempotency_effects`) and a
cross-region transaction's commit (`cairn.store.txn_locks`). The untagged effects are
`test_script_effects.py`'s."""

from __future__ import annotations

import random

from store_harness import FakeClock, MachineClient

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store import StoreMachine, encode_command
from cairn.store.idempotency import tag_command
from cairn.store.idempotency_effects import tag_effects
from cairn.store.idempotency_table import request_count
from cairn.store.layout import decode_meta, meta_key
from cairn.store.scope import Scope
from cairn.store.scripting.effects import STALE, Effects, encode_effects, run_for_effects
from cairn.store.slot import key_slot
from cairn.store.txn_locks import COMMIT_COMMAND, LOCK_COMMAND, PREWRITE_COMMAND

SCRIPT = b"return redis.call('SET', KEYS[1], 'new')"
TS = 1000 << 18


def _region() -> MachineClient:
    """A region's machine holding one other key."""
    c = MachineClient(clock=FakeClock(), machine=StoreMachine(scope=Scope.region(5)))
    assert c.call("SET", "other", "x") == OK
    c.clock.now += 100  # entries may now be applied up to 100 ms before the clock
    return c


def _expired_but_stored(c: MachineClient) -> bool:
    """Whether ``k``'s record is stored with an expiry past at the client's time."""
    raw = c.machine.keyspace.get(meta_key(b"k"))
    return raw is not None and decode_meta(raw).expired(c.clock())


def _counts(c: MachineClient) -> tuple[int, int | None, Reply]:
    """(the region's key count, ``k``'s slot count, DBSIZE)."""
    slot = c.machine.slot_key_count(key_slot(b"k"))
    return c.machine.key_count(), slot, c.call("DBSIZE")


def _apply(c: MachineClient, argv: list[bytes], now: int) -> Reply:
    c.index += 1
    return c.machine.apply(c.index, encode_command(argv[0].decode(), argv[1:], now))


def _tagged_entry(c: MachineClient, now: int) -> list[bytes]:
    """The leader's `cairn.idem` entry for ``IDEMPOTENT r1 EVAL SCRIPT 1 k`` run now."""
    tagged = tag_command([b"IDEMPOTENT", b"r1", b"EVAL", SCRIPT, b"1", b"k"], 60_000, 100)
    assert not isinstance(tagged, ErrorReply)
    machine = c.machine
    run = run_for_effects(machine.keyspace, machine.scope, "eval", [SCRIPT, b"1", b"k"], now,
                          random.Random())  # fmt: skip
    assert isinstance(run, Effects)
    entry = tag_effects(tagged[0][1:], encode_effects(run))
    assert entry is not None
    return entry


def test_a_plain_set_counts_a_key_expired_but_stored_once() -> None:
    c = _region()
    now = c.clock()
    assert _apply(c, [b"set", b"k", b"old", b"PX", b"5"], now - 10) == OK
    assert _expired_but_stored(c) and _counts(c) == (2, 1, Integer(2))
    assert _apply(c, [b"set", b"k", b"new"], now) == OK
    assert _counts(c) == (2, 1, Integer(2))


def test_a_tagged_script_over_a_key_created_and_expired_since_its_run() -> None:
    """The leader ran the tagged script while ``k`` had no record; an entry applied
    before it created ``k``, expired by its time: it is stale and records nothing (its
    records would count ``k`` twice), and the leader's second run counts it once."""
    c = _region()
    now = c.clock()
    entry = _tagged_entry(c, now)
    assert _apply(c, [b"set", b"k", b"old", b"PX", b"5"], now - 10) == OK
    assert _expired_but_stored(c)
    first = _apply(c, entry, now)
    assert _counts(c) == (2, 1, Integer(2))
    assert first == STALE and request_count(c.machine.keyspace, c.machine.scope) == 0
    assert _apply(c, _tagged_entry(c, now), now) == OK
    assert _counts(c) == (2, 1, Integer(2)) and c.call("GET", "k") == Bulk(b"new")
    assert request_count(c.machine.keyspace, c.machine.scope) == 1


def _lock_and_prewrite(c: MachineClient, kind: int, payload: bytes) -> None:
    lock = [b"%d" % TS, b"k", b"3000", b"%d" % (1 << 20), b"0", b"k"]
    assert isinstance(c.apply_internal(LOCK_COMMAND, *lock), Array)
    effect = [b"%d" % TS, b"1", b"k", b"%d" % kind, b"0", payload]
    assert c.apply_internal(PREWRITE_COMMAND, *effect) == Array((Bulk(b"ok"),))


def _commit(c: MachineClient) -> Reply:
    return c.apply_internal(COMMIT_COMMAND, b"%d" % TS, b"%d" % (TS + 5), b"1", b"k")


def test_a_cross_region_commit_over_a_key_expired_but_stored() -> None:
    """``k`` expires while locked (active expiry leaves a locked key alone), then the
    commit restores a new value over it: counted once, as RESTORE REPLACE counts it."""
    c = _region()
    c.call("SET", "k", "new")
    payload = c.call("DUMP", "k")
    assert isinstance(payload, Bulk)
    c.call("SET", "k", "old", "PX", "100")
    _lock_and_prewrite(c, 1, payload.value)
    c.clock.now += 200
    assert _expired_but_stored(c) and _counts(c) == (2, 1, Integer(2))
    assert _commit(c) == Array((Bulk(b"ok"),))
    assert _counts(c) == (2, 1, Integer(2)) and c.call("GET", "k") == Bulk(b"new")


def test_a_cross_region_delete_of_a_key_expired_but_stored() -> None:
    c = _region()
    c.call("SET", "k", "old", "PX", "100")
    _lock_and_prewrite(c, 0, b"")
    c.clock.now += 200
    assert _expired_but_stored(c)
    assert _commit(c) == Array((Bulk(b"ok"),))
    assert _counts(c) == (1, 0, Integer(1))
    assert c.machine.keyspace.get(meta_key(b"k")) is None
