"""`ScriptEffects`, a region leader's EVAL/FCALL run for their effects, against a fake host
and a real store machine: no entry for a script that writes nothing, one effects entry
for one that writes, the script itself once its effects came back stale `MAX_RUNS`
times, and a clear error (nothing proposed) for effects past the entry limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cairn.resp.reply import Bulk, ErrorReply, Integer, Reply
from cairn.runtime.script_wiring import MAX_RUNS, ScriptEffects
from cairn.shard.replica import Completion, Outcome
from cairn.store import COMMANDS, StoreMachine, decode_command, encode_command
from cairn.store.commands.spec import CommandSpec
from cairn.store.scripting.effects import EFFECTS_COMMAND, STALE

REGION = SimpleNamespace(id=1, epoch=None)


@dataclass
class FakeRequest:
    argv: list[bytes]
    spec: CommandSpec
    finished: bool = False
    reply: Reply | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def args(self) -> list[bytes]:
        return self.argv[1:]

    def finish(self, reply: Reply) -> None:
        assert not self.finished
        self.finished, self.reply = True, reply


@dataclass
class FakeHost:
    """Reads are served at once; proposals are applied to `machine` (or answered `STALE`
    while `stale` is set)."""

    machine: StoreMachine
    stale: bool = False
    proposed: list[bytes] = field(default_factory=list)

    def read(self, region_id: int, epoch: Any, key: bytes, on_done: Any) -> None:
        on_done(Completion(Outcome.OK))

    def propose(self, region_id: int, epoch: Any, command: bytes, on_done: Any) -> None:
        self.proposed.append(command)
        if self.stale:
            on_done(Completion(Outcome.OK, STALE))
            return
        value = self.machine.apply(self.machine.applied_index + 1, command)
        on_done(Completion(Outcome.OK, value))


def _runner(limit: int = 1 << 20) -> tuple[ScriptEffects, FakeHost, list[FakeRequest]]:
    machine = StoreMachine()
    machine.apply(1, encode_command("set", [b"k", b"5"], 0))
    host = FakeHost(machine)
    replayed: list[FakeRequest] = []
    runner = ScriptEffects(
        host,  # type: ignore[arg-type]
        lambda request, region: replayed.append(request),
        lambda request: None,
        lambda: limit,
        lambda: 1_700_000_000_000,
    )
    return runner, host, replayed


def _eval(body: str, *keys: str) -> FakeRequest:
    argv = [b"eval", body.encode(), b"%d" % len(keys), *(k.encode() for k in keys)]
    return FakeRequest(argv, COMMANDS["eval"])


def test_a_reading_script_is_answered_without_an_entry() -> None:
    runner, host, _ = _runner()
    request = _eval("return redis.call('GET', KEYS[1])", "k")
    runner.start(request, REGION, host.machine)  # type: ignore[arg-type]
    assert request.reply == Bulk(b"5") and host.proposed == []
    assert runner.counters.answered == 1


def test_a_writing_script_is_one_effects_entry() -> None:
    runner, host, _ = _runner()
    request = _eval("return redis.call('INCRBY', KEYS[1], 10)", "k")
    runner.start(request, REGION, host.machine)  # type: ignore[arg-type]
    assert request.reply == Integer(15)
    assert [decode_command(c)[0] for c in host.proposed] == [EFFECTS_COMMAND]
    assert host.machine.execute_read("get", [b"k"], 0) == Bulk(b"15")


def test_stale_effects_run_again_then_the_script_is_replayed() -> None:
    runner, host, replayed = _runner()
    host.stale = True
    request = _eval("return redis.call('INCR', KEYS[1])", "k")
    runner.start(request, REGION, host.machine)  # type: ignore[arg-type]
    assert len(host.proposed) == MAX_RUNS and replayed == [request]
    assert runner.counters.stale == MAX_RUNS and runner.counters.replayed == 1
    assert not request.finished  # the replay (the node's verbatim write) answers it


def test_effects_past_the_entry_limit_are_refused_and_nothing_is_proposed() -> None:
    runner, host, _ = _runner(limit=2048)
    request = _eval("redis.call('SET', KEYS[1], string.rep('x', 4096))", "k")
    runner.start(request, REGION, host.machine)  # type: ignore[arg-type]
    assert isinstance(request.reply, ErrorReply)
    assert "effects are too large" in request.reply.message and host.proposed == []
    assert host.machine.execute_read("get", [b"k"], 0) == Bulk(b"5")
