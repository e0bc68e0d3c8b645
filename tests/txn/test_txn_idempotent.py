"""Idempotent cross-region transactions over real store machines (`txn_harness.World`):
a tagged request is applied at most once, whatever runs of it overlap, and every run
answers the first outcome (`cairn.txn.idempotent`, `cairn.store.idempotency_txn`)."""

from __future__ import annotations

from collections.abc import Sequence

from txn_harness import CROSSSLOT, START_MS, Outcome, World, region_of

from cairn.resp.reply import NULL, NULL_ARRAY, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store import StoreMachine, classify, encode_command
from cairn.store.idempotency import tag_transaction
from cairn.store.idempotency_entries import IDEMPOTENCY_COMMANDS
from cairn.store.idempotency_table import MISMATCH, REPLY_NOT_KEPT
from cairn.store.idempotency_txn import final_reply
from cairn.store.reply_codec import decode_reply
from cairn.store.transaction import encode_transaction
from cairn.store.txn_locks import TXN_LOCK_COMMANDS
from cairn.txn import Coordinator
from cairn.txn.idempotent import command_tag, exec_tag
from cairn.txn.scratch import store_scratch

TTL_MS, MAX_IDS = 60_000, 1000
TRANSFER = [["INCRBY", "a1", "-5"], ["INCRBY", "b1", "5"], ["INCR", "c1"]]


class TaggingWorld(World):
    """`World` that also delivers the idempotency steps, and runs tagged requests."""

    def _deliver(self, argv: list[bytes]) -> Reply:
        name = argv[0].decode()
        spec = IDEMPOTENCY_COMMANDS.get(name)
        if spec is None:
            return super()._deliver(argv)
        regions = {region_of(k) for k in spec.keys(argv)}
        if len(regions) != 1:
            return CROSSSLOT
        region = self.regions[regions.pop()]
        region.index += 1
        entry = encode_command(name, list(argv[1:]), self.now_ms())
        return region.machine.apply(region.index, entry)

    def tagged(
        self,
        request_id: str,
        commands: Sequence[Sequence[str]],
        single: bool = False,
        watches: Sequence[tuple[bytes, bytes]] = (),
    ) -> Outcome:
        outcome = Outcome()
        argvs = [[a.encode() for a in c] for c in commands]
        if single:
            name = classify(argvs[0])
            assert not isinstance(name, ErrorReply)
            tag = command_tag(
                request_id.encode(), [name.name.encode(), *argvs[0][1:]], TTL_MS, MAX_IDS
            )
        else:
            tag = exec_tag(request_id.encode(), watches, argvs, TTL_MS, MAX_IDS)
        coordinator = Coordinator(
            watches,
            argvs,
            self,
            self.oracle,
            store_scratch,
            self.settings,
            self.rng,
            self.clock + 2.0,
            outcome.set,
            self.resolver.resolve,
            tag,
        )
        outcome.coordinator = coordinator
        coordinator.start()
        return outcome


def _ints(*values: int) -> Array:
    return Array(tuple(Integer(v) for v in values))


def test_a_retry_answers_the_first_reply_and_applies_nothing() -> None:
    world = TaggingWorld()
    first = world.tagged("t1", TRANSFER)
    world.run()
    assert first.reply == _ints(-5, 5, 1)
    again = world.tagged("t1", TRANSFER)
    world.run()
    assert again.reply == _ints(-5, 5, 1)
    assert [world.call("GET", k) for k in ("a1", "b1", "c1")] == [
        Bulk(b"-5"),
        Bulk(b"5"),
        Bulk(b"1"),
    ]
    assert world.tagged("t2", TRANSFER) is not None  # another id is another request
    world.run()
    assert world.call("GET", "c1") == Bulk(b"2")


def test_concurrent_runs_of_one_request_apply_once() -> None:
    world = TaggingWorld()
    runs = [world.tagged("t-same", TRANSFER) for _ in range(4)]
    world.run()
    assert [r.reply for r in runs] == [_ints(-5, 5, 1)] * 4
    assert world.call("GET", "c1") == Bulk(b"1")
    assert world.call("GET", "b1") == Bulk(b"5")


def test_a_retry_after_the_coordinator_died_past_its_commit_point() -> None:
    world = TaggingWorld()
    world.drops.append(lambda argv: argv[0] == b"cairn.txn.commit")  # secondaries never sent
    lost = world.tagged("t-dead", TRANSFER)
    world.run()
    assert lost.reply == _ints(-5, 5, 1)  # the primary committed
    world.drops.clear()
    retry = world.tagged("t-dead", TRANSFER)
    world.run()
    assert retry.reply == _ints(-5, 5, 1)
    assert world.call("GET", "b1") == Bulk(b"5")  # rolled forward once, not applied twice
    assert world.call("GET", "c1") == Bulk(b"1")


def test_a_primary_commit_sent_again_commits_once() -> None:
    world = TaggingWorld()
    world.failures.append(lambda argv: argv[0] == b"cairn.idem.commit")
    first = world.tagged("t-resend", TRANSFER)
    world.run()
    assert first.reply == _ints(-5, 5, 1)
    assert world.call("GET", "c1") == Bulk(b"1")


def test_the_same_id_with_other_commands_applies_nothing() -> None:
    world = TaggingWorld()
    world.tagged("t-mix", TRANSFER)
    world.run()
    other = world.tagged("t-mix", [["INCR", "a1"], ["INCR", "b1"]])
    world.run()
    assert other.reply == MISMATCH
    assert world.call("GET", "a1") == Bulk(b"-5")
    assert not any(r.machine.may_hold_locks for r in world.regions)


def test_a_single_command_request_records_its_own_reply() -> None:
    world = TaggingWorld()
    cmd = [["MSETNX", "a2", "1", "b2", "2"]]
    first = world.tagged("t-one", cmd, single=True)
    world.run()
    assert first.reply == Integer(1)
    again = world.tagged("t-one", cmd, single=True)
    world.run()
    assert again.reply == Integer(1)  # the first outcome, not MSETNX's 0 of a second run


def test_a_read_only_request_records_its_reply() -> None:
    world = TaggingWorld()
    reads = [["GET", "a3"], ["GET", "b3"]]
    first = world.tagged("t-read", reads)
    world.run()
    assert first.reply == Array((NULL, NULL))
    world.call("SET", "a3", "x")
    again = world.tagged("t-read", reads)
    world.run()
    assert again.reply == Array((NULL, NULL))
    assert not any(r.machine.may_hold_locks for r in world.regions)


def test_a_single_region_retry_finds_the_cross_region_record() -> None:
    """A retry that runs in one region (the keys' regions merged meanwhile) reads the
    record the cross-region run wrote: same slot, same digest."""
    world = TaggingWorld()
    argvs = [[a.encode() for a in c] for c in TRANSFER]
    world.tagged("t-merge", TRANSFER)
    world.run()
    payload = encode_transaction([], argvs)
    tagged = tag_transaction(b"t-merge", payload, TTL_MS, MAX_IDS)
    assert not isinstance(tagged, ErrorReply)
    region = world.regions[0]  # whole-keyspace machines: region 0 may run every key
    region.index += 1
    reply = region.machine.apply(
        region.index, encode_command(tagged[0].decode(), tagged[1:], world.now_ms())
    )
    assert reply == _ints(-5, 5, 1)
    assert region.machine.execute_read("get", [b"a1"], world.now_ms()) == Bulk(b"-5")


def test_internal_steps_are_not_client_commands() -> None:
    for name in ("cairn.idem.lock", "cairn.idem.commit"):
        assert name not in TXN_LOCK_COMMANDS
        assert isinstance(classify([name.encode(), b"x"]), ErrorReply)


def test_a_retry_watching_other_keys_finds_the_record() -> None:
    """The record is kept with the first command key, not the first watched one: a retry
    whose WATCH is bound to fail (a probe) still answers the first outcome, and a request
    never applied answers the null array and applies nothing."""
    world = TaggingWorld()
    world.tagged("t-w", TRANSFER)
    world.run()
    probe = [(b"c-probe", b"no such fingerprint"), (b"b1", b"nor this")]
    again = world.tagged("t-w", TRANSFER, watches=probe)
    world.run()
    assert again.reply == _ints(-5, 5, 1)
    fresh = world.tagged("t-w2", TRANSFER, watches=probe)
    world.run()
    assert fresh.reply == NULL_ARRAY
    assert world.call("GET", "c1") == Bulk(b"1")
    assert not any(r.machine.may_hold_locks for r in world.regions)


def test_single_region_record_is_kept_with_the_first_command_key() -> None:
    """One region: a retry whose WATCH names other keys first (here one bound to fail)
    still finds the record, kept with the first command key's slot."""
    machine = World(regions=1).regions[0].machine
    argvs = [[b"INCR", b"a5"], [b"INCR", b"b5"]]
    first = tag_transaction(b"t-1r", encode_transaction([], argvs), TTL_MS, MAX_IDS)
    probe = [(b"zz-probe", b"no such fingerprint")]
    retry = tag_transaction(b"t-1r", encode_transaction(probe, argvs), TTL_MS, MAX_IDS)
    assert not isinstance(first, ErrorReply) and not isinstance(retry, ErrorReply)
    for index, argv in enumerate((first, retry, retry), start=1):
        entry = encode_command(argv[0].decode(), argv[1:], START_MS)
        assert machine.apply(index, entry) == _ints(1, 1)
    assert machine.execute_read("get", [b"a5"], START_MS) == Bulk(b"1")


def _apply(machine: StoreMachine, index: int, argv: Sequence[bytes]) -> Reply:
    return machine.apply(index, encode_command(argv[0].decode(), list(argv[1:]), START_MS))


def test_malformed_steps_are_refused_without_a_trace() -> None:
    """The internal steps come from peers, still checked: bad ids, digests, numbers, a
    first key the lock does not name, an oversized or undecodable reply."""
    machine = StoreMachine()
    digest = b"d" * 16
    lock = [b"1000", b"k1", b"300", b"1000", b"0", b"k1"]
    bad = [
        [b"cairn.idem.lock", b"", digest, b"k1", *lock],
        [b"cairn.idem.lock", b"id", b"short", b"k1", *lock],
        [b"cairn.idem.lock", b"id", digest, b"other", *lock],
        [b"cairn.idem.lock", b"id", digest, b"k1", b"x", b"k1", b"300", b"1000", b"0", b"k1"],
        [b"cairn.idem.commit", b"id", b"0", b"10", digest, b"", b"1000", b"1001", b"k1"],
        [b"cairn.idem.commit", b"id", b"10", b"x", digest, b"", b"1000", b"1001", b"k1"],
        [b"cairn.idem.commit", b"id", b"10", b"10", digest, b"r" * (65 << 10), b"1", b"2", b"k"],
    ]
    for index, argv in enumerate(bad, start=1):
        reply = _apply(machine, index, argv)
        assert isinstance(reply, ErrorReply), argv
    assert not machine.may_hold_locks
    # a commit of a lock it holds, with a reply that does not decode: kept as "not kept"
    assert _apply(machine, 20, [b"cairn.idem.lock", b"id", digest, b"k1", *lock]) == Array(
        (Bulk(b"ok"), Array((Array((Integer(0), Integer(0), NULL)),)))
    )
    commit = [b"cairn.idem.commit", b"id", b"60000", b"10", digest, b"\xc1junk"]
    assert _apply(machine, 21, [*commit, b"1000", b"1001", b"k1"]) == Array((Bulk(b"ok"),))
    again = _apply(machine, 22, [b"cairn.idem.lock", b"id", digest, b"k1", *lock])
    blob = final_reply(again)
    assert blob is not None and decode_reply(blob) == REPLY_NOT_KEPT
