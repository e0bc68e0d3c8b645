"""`ScriptEffects`, a region leader's EVAL/FCALL run for their effects, against a fake
`EffectsIo` and a real store machine: no entry for a script that writes nothing, one
effects entry for one that writes, the script itself once its effects came back stale
`MAX_RUNS` times, and a clear error (nothing proposed) for effects past the entry limit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cairn.resp.reply import Bulk, ErrorReply, Integer
from cairn.shard.replica import Callback, Completion, Outcome
from cairn.shard.script_effects import MAX_RUNS, ScriptEffects
from cairn.store import StoreMachine, decode_command, encode_command
from cairn.store.scripting.effects import EFFECTS_COMMAND, STALE


@dataclass
class FakeIo:
    """Reads are served at once; proposals are applied to `machine` (or come back
    `STALE` while `stale` is set)."""

    machine: StoreMachine
    stale: bool = False
    proposed: list[bytes] = field(default_factory=list)
    replayed: int = 0
    outcome: Completion | None = None

    def read(self, on_done: Callback) -> None:
        on_done(Completion(Outcome.OK))

    def propose(self, command: bytes, on_done: Callback) -> None:
        self.proposed.append(command)
        if self.stale:
            on_done(Completion(Outcome.OK, STALE))
            return
        on_done(Completion(Outcome.OK, self.machine.apply(self.machine.applied_index + 1, command)))

    def replay(self) -> None:
        self.replayed += 1

    def done(self, completion: Completion) -> None:
        assert self.outcome is None
        self.outcome = completion

    def cancelled(self) -> bool:
        return self.outcome is not None


def _setup(limit: int = 1 << 20) -> tuple[ScriptEffects, FakeIo]:
    machine = StoreMachine()
    machine.apply(1, encode_command("set", [b"k", b"5"], 0))
    runner = ScriptEffects(random.Random(1), lambda: 1_700_000_000_000, lambda: limit)
    return runner, FakeIo(machine)


def _run(runner: ScriptEffects, io: FakeIo, body: str, *keys: str) -> None:
    args = [body.encode(), b"%d" % len(keys), *(k.encode() for k in keys)]
    runner.start("eval", args, io.machine, io)


def test_a_reading_script_is_answered_without_an_entry() -> None:
    runner, io = _setup()
    _run(runner, io, "return redis.call('GET', KEYS[1])", "k")
    assert io.outcome == Completion(Outcome.OK, Bulk(b"5")) and io.proposed == []
    assert runner.counters.answered == 1


def test_a_writing_script_is_one_effects_entry() -> None:
    runner, io = _setup()
    _run(runner, io, "return redis.call('INCRBY', KEYS[1], 10)", "k")
    assert io.outcome == Completion(Outcome.OK, Integer(15))
    assert [decode_command(c)[0] for c in io.proposed] == [EFFECTS_COMMAND]
    assert io.machine.execute_read("get", [b"k"], 0) == Bulk(b"15")


def test_stale_effects_run_again_then_the_script_is_replayed() -> None:
    runner, io = _setup()
    io.stale = True
    _run(runner, io, "return redis.call('INCR', KEYS[1])", "k")
    assert len(io.proposed) == MAX_RUNS and io.replayed == 1 and io.outcome is None
    assert runner.counters.stale == MAX_RUNS and runner.counters.replayed == 1


def test_effects_past_the_entry_limit_are_refused_and_nothing_is_proposed() -> None:
    runner, io = _setup(limit=2048)
    _run(runner, io, "redis.call('SET', KEYS[1], string.rep('x', 4096))", "k")
    assert io.outcome is not None and isinstance(io.outcome.value, ErrorReply)
    assert "effects are too large" in io.outcome.value.message and io.proposed == []
    assert io.machine.execute_read("get", [b"k"], 0) == Bulk(b"5")


def _tagged(request_id: bytes, body: str, *keys: str) -> list[bytes]:
    """The `cairn.idem` arguments of ``IDEMPOTENT <id> EVAL body n keys ...``."""
    from cairn.store.idempotency import tag_command

    argv = [b"IDEMPOTENT", request_id, b"EVAL", body.encode(), b"%d" % len(keys)]
    tagged = tag_command([*argv, *(k.encode() for k in keys)], 600_000, 1000)
    assert not isinstance(tagged, ErrorReply)
    return tagged[0][1:]


def test_a_tagged_script_is_one_idem_entry_with_its_effects_and_a_retry_is_answered() -> None:
    from cairn.store.idempotency_entries import EFFECTS_WRAPPED, IDEM_COMMAND

    runner, io = _setup()
    body = "local t = redis.call('TIME'); redis.call('SET', KEYS[1], t[2]); return t[2]"
    runner.start(IDEM_COMMAND, _tagged(b"r1", body, "k"), io.machine, io)
    assert io.outcome is not None and isinstance(io.outcome.value, Bulk)
    first = io.outcome.value
    (entry,) = io.proposed
    name, args, _ = decode_command(entry)
    assert name == IDEM_COMMAND and args[3] == EFFECTS_WRAPPED  # effects, not the script
    assert io.machine.execute_read("get", [b"k"], 0) == first
    # a retry: answered the first reply from the record, no run, no entry
    io.outcome = None
    runner.start(IDEM_COMMAND, _tagged(b"r1", body, "k"), io.machine, io)
    assert io.outcome == Completion(Outcome.OK, first) and len(io.proposed) == 1
    # two copies run before either applied: the second entry applies nothing
    index = io.machine.applied_index + 1
    assert io.machine.apply(index, entry) == first


def test_a_tagged_reading_script_runs_as_its_entry() -> None:
    from cairn.store.idempotency_entries import IDEM_COMMAND

    runner, io = _setup()
    runner.start(IDEM_COMMAND, _tagged(b"r2", "return 1", "k"), io.machine, io)
    assert io.replayed == 1 and io.proposed == []


def test_hostile_tagged_effects_entries_are_refused_and_record_nothing() -> None:
    from cairn.store.idempotency_entries import EFFECTS_WRAPPED, IDEM_COMMAND, MALFORMED

    runner, io = _setup()
    body = "return redis.call('INCR', KEYS[1])"
    runner.start(IDEM_COMMAND, _tagged(b"r3", body, "k"), io.machine, io)
    _, good, _ = decode_command(io.proposed[0])
    head = good[:4]
    assert head[3] == EFFECTS_WRAPPED
    effects, key, digest = good[4:]
    bad = [
        [*head, effects, key],  # a part missing
        [*head, effects, key, digest[:-1]],  # a short digest
        [*head, b"\xc1junk", key, b"r" + digest],  # not effects, a long digest
        [*head, b"\xc1junk", key, digest],  # not effects
    ]
    for n, args in enumerate(bad):
        args = [b"bad%d" % n, *args[1:]]
        reply = io.machine.apply(
            io.machine.applied_index + 1, encode_command(IDEM_COMMAND, args, 0)
        )
        assert isinstance(reply, ErrorReply), reply
    assert io.machine.execute_read("get", [b"k"], 0) == Bulk(b"6")  # applied once only
    # a stale copy (k changed since the run) writes and records nothing
    io.machine.apply(io.machine.applied_index + 1, encode_command("set", [b"k", b"9"], 0))
    fresh = [b"r4", *good[1:]]
    assert (
        io.machine.apply(io.machine.applied_index + 1, encode_command(IDEM_COMMAND, fresh, 0))
        == STALE
    )
    assert io.machine.execute_read("get", [b"k"], 0) == Bulk(b"9")
    assert MALFORMED.message.startswith("ERR malformed")


def test_a_tagged_exec_queueing_a_script_is_one_idem_entry() -> None:
    from cairn.store.idempotency import tag_transaction
    from cairn.store.idempotency_entries import EFFECTS_WRAPPED, IDEM_COMMAND
    from cairn.store.transaction import encode_transaction

    runner, io = _setup()
    payload = encode_transaction(
        [], [[b"EVAL", b"return redis.call('INCR', KEYS[1])", b"1", b"k"], [b"GET", b"k"]]
    )
    tagged = tag_transaction(b"t1", payload, 600_000, 1000)
    assert not isinstance(tagged, ErrorReply)
    runner.start(IDEM_COMMAND, tagged[1:], io.machine, io)
    assert io.outcome is not None and io.outcome.outcome is Outcome.OK
    (entry,) = io.proposed
    assert decode_command(entry)[1][3] == EFFECTS_WRAPPED
    assert io.machine.execute_read("get", [b"k"], 0) == Bulk(b"6")
    io.outcome = None
    first = io.machine.apply(io.machine.applied_index + 1, entry)  # a second copy
    assert io.machine.execute_read("get", [b"k"], 0) == Bulk(b"6") and not isinstance(
        first, ErrorReply
    )
