"""Scripts replicated by their effects (`cairn.store.scripting.effects`) and the overlay
keyspace they run on (`cairn.store.overlay`), on store machines: the leader's run, the
entry, and its apply on replicas that never run Lua."""

from __future__ import annotations

import random
from collections import Counter

from store_harness import FakeClock, MachineClient, normalize, resp2
from store_script import load_script

from cairn.resp.codec import encode
from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, Map, Reply
from cairn.store import StoreMachine, classify, encode_command
from cairn.store.keyspace import MemoryKeyspace, write_batch
from cairn.store.layout import decode_meta, encode_stamp, meta_key
from cairn.store.overlay import OverlayKeyspace, record_owner
from cairn.store.scope import Scope
from cairn.store.scripting.effects import (
    EFFECT_SCRIPTS,
    EFFECTS_COMMAND,
    PLACEHOLDER_STAMP,
    STALE,
    Answer,
    Effects,
    Replay,
    apply_effects,
    encode_effects,
    run_for_effects,
    wake_part,
)
from cairn.store.slot import key_slot


class EffectsClient(MachineClient):
    """A `MachineClient` whose EVAL and FCALL run as a region leader runs them: once,
    through an overlay, then applied as their `cairn.effects` entry (or answered without
    one, or replicated as themselves when untrackable)."""

    def __init__(self, clock: FakeClock, machine: StoreMachine | None = None) -> None:
        super().__init__(clock=clock, machine=machine or StoreMachine())
        self.rng = random.Random(3)
        self.outcomes: Counter[str] = Counter()
        self.entries: list[bytes] = []

    def call(self, *argv: bytes | str) -> Reply:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        fronted = self.scripts.front(args) if args else args
        if not isinstance(fronted, list):
            return fronted
        spec = classify(fronted)
        if isinstance(spec, ErrorReply) or spec.name not in EFFECT_SCRIPTS:
            return super().call(*fronted) if not isinstance(spec, ErrorReply) else spec
        now = self.machine.effective_now(self.clock())
        machine = self.machine
        outcome = run_for_effects(
            machine.keyspace, machine.scope, spec.name, fronted[1:], now, self.rng
        )
        self.outcomes[type(outcome).__name__] += 1
        if isinstance(outcome, Answer):
            return outcome.reply
        if isinstance(outcome, Replay):
            return self.apply_entry(encode_command(spec.name, fronted[1:], now))
        return self.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(outcome)], now))

    def apply_entry(self, data: bytes) -> Reply:
        """Apply one entry at the next index (kept in `entries`)."""
        self.index += 1
        self.entries.append(data)
        return self.machine.apply(self.index, data)


def _client() -> EffectsClient:
    return EffectsClient(FakeClock())


# -- the overlay ------------------------------------------------------------------------


def _base(*pairs: tuple[bytes, bytes]) -> MemoryKeyspace:
    space = MemoryKeyspace()
    with write_batch(space) as batch:
        for key, value in pairs:
            batch.put(key, value)
    return space


def _overlay(base: MemoryKeyspace) -> OverlayKeyspace:
    return OverlayKeyspace(base, lambda k: k == b"Xkeys", lambda k: k == b"Xkeys")


def test_overlay_reads_through_and_never_writes_the_base() -> None:
    base = _base((b"Fa", b"1"), (b"Fc", b"3"), (b"Fe", b"5"))
    overlay = _overlay(base)
    batch = overlay.begin()
    batch.put(b"Fb", b"2")
    batch.delete(b"Fc")
    batch.put(b"Fe", b"50")
    batch.commit()
    assert overlay.get(b"Fa") == b"1" and overlay.get(b"Fc") is None
    assert overlay.scan(b"F", b"G") == [(b"Fa", b"1"), (b"Fb", b"2"), (b"Fe", b"50")]
    assert overlay.rscan(b"F", b"G") == [(b"Fe", b"50"), (b"Fb", b"2"), (b"Fa", b"1")]
    assert overlay.scan(b"Fb", None, 1) == [(b"Fb", b"2")]
    assert overlay.rscan(b"F", b"Fe", 1) == [(b"Fb", b"2")]
    assert base.scan(b"", None) == [(b"Fa", b"1"), (b"Fc", b"3"), (b"Fe", b"5")]
    assert overlay.record_writes() == [(b"Fb", b"2"), (b"Fc", None), (b"Fe", b"50")]


def test_overlay_scans_fill_their_limit_past_hidden_rows() -> None:
    base = _base(*[(b"F%03d" % i, b"v") for i in range(10)])
    overlay = _overlay(base)
    batch = overlay.begin()
    for i in range(0, 8):
        batch.delete(b"F%03d" % i)
    batch.commit()
    assert overlay.scan(b"F", b"G", 2) == [(b"F008", b"v"), (b"F009", b"v")]
    assert overlay.rscan(b"F", b"F009", 1) == [(b"F008", b"v")]


def test_overlay_abort_restores_its_writes_and_counters_are_deltas() -> None:
    base = _base((b"Xkeys", (7).to_bytes(8, "big")))
    overlay = _overlay(base)
    batch = overlay.begin()
    batch.put(b"Xkeys", (9).to_bytes(8, "big"))
    batch.commit()
    batch = overlay.begin()
    batch.put(b"Xkeys", (20).to_bytes(8, "big"))
    batch.abort()
    assert overlay.counter_deltas() == [(b"Xkeys", 2, False)]
    assert overlay.record_writes() == []


def test_overlay_names_the_key_behind_each_record_and_flags_walks() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("RPUSH", "list", "a", "b")
    space = client.machine.keyspace
    overlay = OverlayKeyspace(space, lambda k: False, lambda k: False)
    for internal, _ in space.scan(b"", None):
        assert record_owner(internal) in (b"list", None)
    overlay.get(meta_key(b"list"))
    assert overlay.touched == {b"list"} and not overlay.untracked
    overlay.scan(b"M", b"N")  # a walk over every key, as KEYS does
    assert overlay.untracked


# -- runs and entries -------------------------------------------------------------------


def test_a_writing_script_becomes_one_effects_entry_with_the_entry_stamp() -> None:
    c = _client()
    reply = c.call("EVAL", "redis.call('SET', KEYS[1], 'v'); return redis.call('INCR', KEYS[2])",
                   "2", "a", "n")  # fmt: skip
    assert reply == Integer(1)
    assert c.outcomes == Counter({"Effects": 1})
    assert decode_command_name(c.entries[-1]) == EFFECTS_COMMAND
    for key in (b"a", b"n"):
        raw = c.machine.keyspace.get(meta_key(key))
        assert raw is not None and decode_meta(raw).stamp == encode_stamp(0, c.index)
    assert PLACEHOLDER_STAMP not in b"".join(v for _, v in c.machine.keyspace.scan(b"", None))
    assert c.call("GET", "a") == Bulk(b"v") and c.call("DBSIZE") == Integer(2)


def decode_command_name(data: bytes) -> str:
    from cairn.store import decode_command

    return decode_command(data)[0]


def test_a_script_that_writes_nothing_needs_no_entry() -> None:
    c = _client()
    c.call("SET", "a", "1")
    entries = len(c.entries)
    assert c.call("EVAL", "return redis.call('GET', KEYS[1])", "1", "a") == Bulk(b"1")
    assert c.call("EVAL", "return redis.call('DBSIZE')", "0") == Integer(1)
    assert c.outcomes == Counter({"Answer": 2}) and len(c.entries) == entries


def test_a_keyless_command_makes_a_writer_replay_as_itself() -> None:
    c = _client()
    c.call("SET", "a", "1")
    script = "redis.call('SET', 'b', redis.call('DBSIZE')); return redis.call('GET', 'b')"
    assert c.call("EVAL", script, "0") == Bulk(b"1")
    assert c.outcomes == Counter({"Replay": 1})
    assert decode_command_name(c.entries[-1]) == "eval"


def test_an_entry_whose_keys_changed_writes_nothing_and_answers_stale() -> None:
    machine = StoreMachine()
    c = EffectsClient(FakeClock(), machine)
    c.call("SET", "n", "10")
    now = machine.effective_now(c.clock())
    script = [b"return redis.call('INCRBY', KEYS[1], 5)", b"1", b"n"]
    first = run_for_effects(machine.keyspace, machine.scope, "eval", script, now, random.Random())
    second = run_for_effects(machine.keyspace, machine.scope, "eval", script, now, random.Random())
    assert isinstance(first, Effects) and isinstance(second, Effects)
    assert c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(first)], now)) == (
        Integer(15)
    )
    assert c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(second)], now)) == STALE
    assert c.call("GET", "n") == Bulk(b"15")


def test_key_counts_travel_as_deltas_past_other_writes() -> None:
    machine = StoreMachine(scope=Scope.region(5))
    c = EffectsClient(FakeClock(), machine)
    now = machine.effective_now(c.clock())
    run = run_for_effects(machine.keyspace, machine.scope, "eval",
                          [b"redis.call('SET', KEYS[1], 1)", b"1", b"mine"], now,
                          random.Random())  # fmt: skip
    assert isinstance(run, Effects)
    c.call("SET", "other", "x")  # another entry creates a key in between
    assert c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(run)], now)) is not STALE
    assert c.call("DBSIZE") == Integer(2)
    assert c.machine.slot_key_count(0) is not None


def _counts(c: EffectsClient, key: bytes) -> tuple[int, int | None, Reply]:
    """(the region's key count, `key`'s slot count, DBSIZE)."""
    machine = c.machine
    return machine.key_count(), machine.slot_key_count(key_slot(key)), c.call("DBSIZE")


def _created_expired_after_the_run(
    script: str, write: list[bytes]
) -> tuple[EffectsClient, Effects, int]:
    """A region where the leader ran `script` on key ``k`` while ``k`` had no record, and
    then an entry applied before the script's created ``k`` already expired at the
    script's time (`write`'s argv, applied 10 ms before that time): the client, the run,
    and its time."""
    c = EffectsClient(FakeClock(), StoreMachine(scope=Scope.region(5)))
    c.call("SET", "other", "x")
    c.clock.now += 100
    now = c.machine.effective_now(c.clock())
    run = run_for_effects(c.machine.keyspace, c.machine.scope, "eval",
                          [script.encode(), b"1", b"k"], now, random.Random())  # fmt: skip
    assert isinstance(run, Effects)
    c.apply_entry(encode_command(write[0].decode(), write[1:], now - 10))
    assert c.machine.keyspace.get(meta_key(b"k")) is not None  # stored, expired at `now`
    return c, run, now


def test_a_key_expired_but_stored_since_the_run_is_counted_once() -> None:
    """The run saw no record of ``k``; at its apply ``k`` is expired but still stored
    (counted). Applying the run's records would replace that record while adding ``k``
    to the counts again: the entry must be stale, and the rerun counts ``k`` once, as a
    plain SET does."""
    plain = EffectsClient(FakeClock(), StoreMachine(scope=Scope.region(5)))
    plain.call("SET", "other", "x")
    plain.apply_entry(encode_command("set", [b"k", b"old", b"PX", b"5"], plain.clock() - 10))
    assert plain.apply_entry(encode_command("set", [b"k", b"new"], plain.clock())) == OK
    assert _counts(plain, b"k") == (2, 1, Integer(2))

    script = "return redis.call('SET', KEYS[1], 'new')"
    c, run, now = _created_expired_after_the_run(script, [b"set", b"k", b"old", b"PX", b"5"])
    first = c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(run)], now))
    assert _counts(c, b"k") == (2, 1, Integer(2))
    assert first == STALE  # nothing written: the leader runs the script again
    again = run_for_effects(c.machine.keyspace, c.machine.scope, "eval",
                            [script.encode(), b"1", b"k"], now, random.Random())  # fmt: skip
    assert isinstance(again, Effects)
    assert c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(again)], now)) == OK
    assert _counts(c, b"k") == _counts(plain, b"k")
    assert c.call("GET", "k") == Bulk(b"new")


def test_a_hash_expired_but_stored_since_the_run_leaves_no_field_behind() -> None:
    """As above with a hash: the rerun deletes the expired hash's fields as HSET would."""
    script = "return redis.call('HSET', KEYS[1], 'g', 'w')"
    write = [b"hset", b"k", b"f", b"v"]
    c, run, now = _created_expired_after_the_run(script, write)
    c.apply_entry(encode_command("pexpireat", [b"k", b"%d" % (now - 5)], now - 10))
    first = c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(run)], now))
    assert _counts(c, b"k") == (2, 1, Integer(2))
    assert first == STALE
    again = run_for_effects(c.machine.keyspace, c.machine.scope, "eval",
                            [script.encode(), b"1", b"k"], now, random.Random())  # fmt: skip
    assert isinstance(again, Effects)
    assert c.apply_entry(encode_command(EFFECTS_COMMAND, [encode_effects(again)], now)) == (
        Integer(1)
    )
    assert _counts(c, b"k") == (2, 1, Integer(2))
    assert c.call("HGETALL", "k") == Map(((Bulk(b"g"), Bulk(b"w")),))


def test_a_push_onto_a_long_list_is_a_small_entry() -> None:
    c = _client()
    for i in range(20):
        c.call("RPUSH", "big", *[b"element-%06d" % j for j in range(i * 500, (i + 1) * 500)])
    assert c.call("LLEN", "big") == Integer(10_000)
    assert c.call("EVAL", "return redis.call('RPUSH', KEYS[1], 'new')", "1", "big") == (
        Integer(10_001)
    )
    assert len(c.entries[-1]) < 400
    assert c.call("LINDEX", "big", "-1") == Bulk(b"new")


def test_random_draws_differ_between_runs_as_in_redis_7() -> None:
    c = _client()
    values = set()
    for _ in range(5):
        c.call("EVAL", "redis.call('SET', KEYS[1], math.random(1000000000))", "1", "r")
        reply = c.call("GET", "r")
        assert isinstance(reply, Bulk)
        values.add(reply.value)
    assert len(values) > 1
    assert c.call("EVAL", "redis.call('TIME'); return redis.call('SET', 'x', '1')", "0") == (
        c.call("SET", "y", "1")
    )


def test_an_error_after_writes_keeps_them_and_a_budget_stop_discards_them() -> None:
    c = _client()
    reply = c.call("EVAL", "redis.call('SET', KEYS[1], 'kept'); return redis.call('INCR', KEYS[1])",
                   "1", "k")  # fmt: skip
    assert isinstance(reply, ErrorReply) and reply.message.startswith("ERR value is not an integer")
    assert c.call("GET", "k") == Bulk(b"kept")
    reply = c.call("EVAL", "redis.call('SET', KEYS[1], 'gone'); while true do end", "1", "k")
    assert isinstance(reply, ErrorReply) and "instruction budget" in reply.message
    assert c.call("GET", "k") == Bulk(b"kept")


def test_notifications_and_wake_keys_travel_in_the_entry() -> None:
    machine = StoreMachine()
    machine.collect_events = True
    now = 1_700_000_000_000
    body = b"redis.call('SET', KEYS[2], 1); redis.call('LPUSH', KEYS[1], 'x'); " + (
        b"redis.call('DEL', KEYS[2])"
    )
    run = run_for_effects(machine.keyspace, machine.scope, "eval", [body, b"2", b"q", b"gone"],
                          now, random.Random(), collect_events=True)  # fmt: skip
    assert isinstance(run, Effects)
    assert run.wake == (b"q",)  # "gone" was created and deleted: nothing to wake
    assert wake_part(encode_effects(run)) == [b"", b"1", b"q"]
    machine.apply(1, encode_command(EFFECTS_COMMAND, [encode_effects(run)], now))
    assert [e[1:] for e in machine.take_events(1)] == [
        ("new", b"gone"),
        ("set", b"gone"),
        ("new", b"q"),
        ("lpush", b"q"),
        ("del", b"gone"),
    ]
    assert machine.key_count() == 1


def test_a_malformed_or_foreign_entry_changes_nothing() -> None:
    machine = StoreMachine()
    scope = machine.scope
    bad = encode_effects(Effects(Array(()), ((b"a", b"x"),), ((meta_key(b"b"), b"\x00v"),),
                                 (), (), ()))  # fmt: skip
    malformed = ErrorReply("ERR malformed script effects entry")
    assert apply_effects(machine.keyspace, scope, 1, 0, bad) == malformed  # a foreign key
    assert apply_effects(machine.keyspace, scope, 1, 0, b"\x93junk") == malformed
    assert machine.keyspace.get(meta_key(b"b")) is None


# -- replies unchanged: every scripting line, run for its effects ------------------------


def test_every_script_line_answers_as_the_script_run_in_apply() -> None:
    verbatim = MachineClient(clock=FakeClock())
    effects = _client()
    mismatches = []
    scripting = {"scripting.txt", "functions.txt", "script_libraries.txt"}
    for line in (line for line in load_script() if line.source in scripting):
        first, second = verbatim.call(*line.argv), effects.call(*line.argv)
        theirs, ours = resp2(first), resp2(second)
        if normalize(theirs, line.tags, line.argv) != normalize(ours, line.tags, line.argv):
            mismatches.append(f"{line.where}: {line.argv!r}: {theirs!r} != {ours!r}")
        elif not line.tags and encode(first, 3) != encode(second, 3):
            mismatches.append(f"{line.where}: RESP3 {first!r} != {second!r}")
    assert not mismatches, "\n".join(mismatches[:20])
    assert effects.outcomes["Effects"] > 10 and effects.outcomes["Answer"] > 50


def test_function_subcommands_have_redis_acl_categories() -> None:
    """As redis-server 7.0.15: FUNCTION LOAD is @write (denied by -@write), LIST is not;
    the scripting category holds the FUNCTION and SCRIPT subcommands."""
    from cairn.store.acl.check import check
    from cairn.store.acl.user import parse_description
    from cairn.store.scripting.acl import script_catalog

    catalog = script_catalog()
    user = parse_description("u", "on nopass ~* &* +@all -@write", catalog)
    denied = check(user, catalog, [b"FUNCTION", b"LOAD", b"code"], [], False)
    assert denied is not None and denied.object == "function|load"
    assert check(user, catalog, [b"FUNCTION", b"LIST"], [], False) is None
    assert {"function|load", "script|load", "eval"} <= set(catalog.in_category("scripting"))
