"""A transaction (MULTI/EXEC in one region, a `cairn.exec` entry) that queues a script is
run once by the region's leader and replicated by its effects
(`cairn.store.scripting.effects.run_transaction_for_effects`): the same replies and state
as the transaction applied on every replica, WATCH kept, stale runs refused, untrackable
ones replayed."""

from __future__ import annotations

import random
from collections.abc import Sequence

from store_harness import FakeClock, MachineClient

from cairn.resp.reply import NULL_ARRAY, OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store import StoreMachine, encode_command
from cairn.store.scripting.effects import (
    EFFECTS_COMMAND,
    STALE,
    Answer,
    Effects,
    Outcome,
    Replay,
    encode_effects,
    run_for_effects,
    runs_for_effects,
)
from cairn.store.transaction import TXN_COMMAND, encode_transaction
from cairn.txn.protocol import lock_argv

NOW = 1_700_000_000_000
BUMP = "redis.call('SET', KEYS[2], ARGV[1]) return redis.call('INCRBY', KEYS[1], ARGV[1])"
WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
COMMANDS = [
    ["SET", "a", "5"],
    ["EVAL", BUMP, "2", "a", "b", "3"],
    ["INCR", "c"],
    ["EVAL", "return redis.call('INCR', KEYS[1])", "1", "b"],
    ["LPUSH", "b", "x"],
    ["GET", "a"],
]


class Region:
    """A machine and its log index."""

    def __init__(self, *writes: Sequence[str]) -> None:
        client = MachineClient(clock=FakeClock(), machine=StoreMachine())
        for argv in writes:
            client.call(*argv)
        self.machine, self.index = client.machine, client.index

    def apply(self, name: str, arg: bytes) -> Reply:
        self.index += 1
        return self.machine.apply(self.index, encode_command(name, [arg], NOW))

    def run(self, payload: bytes) -> Outcome:
        """The leader's run of transaction `payload` for its effects."""
        machine = self.machine
        return run_for_effects(
            machine.keyspace, machine.scope, TXN_COMMAND, [payload], NOW, random.Random(1)
        )

    def dumps(self, *keys: str) -> list[Reply]:
        return [self.machine.execute_read("dump", [k.encode()], NOW) for k in keys]


def _payload(commands: list[list[str]], watches: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    return encode_transaction(watches, [[a.encode() for a in c] for c in commands])


def test_the_effects_entry_gives_the_transactions_replies_and_state() -> None:
    leader, verbatim = Region(["SET", "c", "1"]), Region(["SET", "c", "1"])
    payload = _payload(COMMANDS)
    assert runs_for_effects(TXN_COMMAND, [payload])
    assert not runs_for_effects(TXN_COMMAND, [_payload([["SET", "a", "1"]])])
    outcome = leader.run(payload)
    assert isinstance(outcome, Effects)
    applied = leader.apply(EFFECTS_COMMAND, encode_effects(outcome))
    expected = verbatim.apply(TXN_COMMAND, payload)
    assert applied == expected
    assert expected == Array((OK, Integer(8), Integer(2), Integer(4), WRONGTYPE, Bulk(b"8")))
    assert leader.dumps("a", "b", "c") == verbatim.dumps("a", "b", "c")
    assert leader.machine.execute_read("get", [b"b"], NOW) == Bulk(b"4")


def test_a_changed_watched_key_answers_the_null_array_without_an_entry() -> None:
    region = Region(["SET", "w", "1"])
    prints = region.apply("cairn.watch", b"w")
    assert isinstance(prints, Array) and isinstance(prints.items[0], Bulk)
    watched = [(b"w", prints.items[0].value)]
    payload = _payload([["EVAL", BUMP, "2", "a", "b", "1"]], watched)
    assert isinstance(region.run(payload), Effects)
    region.apply(TXN_COMMAND, _payload([["SET", "w", "2"]]))
    assert region.run(payload) == Answer(NULL_ARRAY)


def test_a_key_changed_between_the_run_and_the_apply_makes_the_entry_stale() -> None:
    region = Region()
    outcome = region.run(_payload([["EVAL", BUMP, "2", "a", "b", "1"]]))
    assert isinstance(outcome, Effects)
    region.apply(TXN_COMMAND, _payload([["SET", "a", "10"]]))
    assert region.apply(EFFECTS_COMMAND, encode_effects(outcome)) == STALE
    assert region.machine.execute_read("get", [b"a"], NOW) == Bulk(b"10")


def test_reads_are_answered_and_keyless_writes_replayed() -> None:
    region = Region(["SET", "a", "1"])
    reading = region.run(_payload([["EVAL", "return redis.call('GET', KEYS[1])", "1", "a"]]))
    assert reading == Answer(Array((Bulk(b"1"),)))
    counted = region.run(
        _payload([["EVAL", "return redis.call('SET', KEYS[1], redis.call('DBSIZE'))", "1", "a"]])
    )
    assert isinstance(counted, Replay)
    keyless = region.run(_payload([["EVAL", "return 1", "1", "a"], ["SET", "b", "1"], ["DBSIZE"]]))
    assert isinstance(keyless, Replay)


def test_a_script_stopped_by_its_budget_discards_only_its_own_writes() -> None:
    region, verbatim = Region(), Region()
    payload = _payload(
        [["SET", "a", "1"], ["EVAL", "redis.call('SET', KEYS[1], 'x') while true do end", "1", "b"]]
    )
    outcome = region.run(payload)
    assert isinstance(outcome, Effects)
    applied = region.apply(EFFECTS_COMMAND, encode_effects(outcome))
    assert applied == verbatim.apply(TXN_COMMAND, payload)
    assert isinstance(applied, Array) and applied.items[0] == OK
    assert region.dumps("a", "b") == verbatim.dumps("a", "b")


def test_a_read_of_a_locked_key_answers_locked_for_the_node_to_resolve() -> None:
    """A run that writes nothing is answered as a read: not over a key a cross-region
    transaction holds locked (its value may already have changed at the primary)."""
    region = Region(["SET", "a", "1"])
    argv = lock_argv(5 << 18, b"a", 3000, 1 << 20, [], [b"a"])
    region.index += 1
    region.machine.apply(region.index, encode_command(argv[0].decode(), argv[1:], NOW))
    assert region.machine.may_hold_locks
    machine = region.machine
    for name, args in (
        ("eval", [b"return redis.call('GET', KEYS[1])", b"1", b"a"]),
        (TXN_COMMAND, [_payload([["EVAL", "return redis.call('GET', 'a')", "0"]])]),
    ):
        outcome = run_for_effects(
            machine.keyspace, machine.scope, name, args, NOW, random.Random(1), check_locks=True
        )
        assert isinstance(outcome, Answer) and isinstance(outcome.reply, ErrorReply)
        assert outcome.reply.message.startswith("LOCKED "), name
