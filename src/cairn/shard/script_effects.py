"""`ScriptEffects`: a region leader's EVAL and FCALL, run once and replicated by their effects.

Theory of operation (the store's side is `cairn.store.scripting.effects`). The node hands
over every EVAL/FCALL it would propose in a region it leads, and every transaction
(``cairn.exec``) that queues one (`effects.runs_for_effects`), with an `EffectsIo` that
reads, proposes and answers for that one request. The runner

1. waits until the region's applied state is linearizably readable here (`io.read`: the
   leader's lease, or a ReadIndex, as for any read);
2. runs the script on that state through an overlay (`run_for_effects`);
3. answers at once if the script wrote nothing (no entry: it was a read; `-LOCKED`, for
   the node to resolve, if a key it read is locked by a cross-region transaction),
   proposes it as itself if its effects cannot be tracked (`io.replay`), or proposes its one
   `cairn.effects` entry, refused with a clear error when it is larger than the entry
   limit;
4. when that entry comes back `STALE` (a key the script used changed between the run and
   the apply; the entry wrote nothing), goes back to 1, at most `MAX_RUNS` entries in
   all; then it proposes the script itself, which every replica runs in apply (as before
   effects existed), so a script under contention always completes.

The client's node must run a script alone in its client's program order (the runtime's
`ProgramOrder.submit(exclusive=True)`): the state read in 1 then holds every earlier
command of the client and no later one, and a script retried in 4 cannot be overtaken by
a later command of its own client.

Pure: no clock, no I/O, no module-level randomness; the node injects its clock and its
random source (a script's draws need not agree between replicas any more: only its
effects are replicated, so each run draws afresh, as in Redis 7.0).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cairn.resp.reply import ErrorReply
from cairn.shard.replica import Callback, Completion, Outcome
from cairn.store.idempotency_effects import known_reply, tag_effects
from cairn.store.idempotency_entries import IDEM_COMMAND
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.scripting.effects import (
    EFFECTS_COMMAND,
    STALE,
    Answer,
    Effects,
    Replay,
    encode_effects,
    run_for_effects,
)
from cairn.store.scripting.pool import StatePool

__all__ = ["MAX_RUNS", "EffectsCounters", "EffectsIo", "ScriptEffects", "effects_too_large"]

MAX_RUNS = 3
"""Effects entries a script gets before it is replicated as itself."""


class EffectsIo(Protocol):
    """What the runner needs for one request (the node's or the simulator's wiring)."""

    def read(self, on_done: Callback) -> None:
        """Complete OK once the region may be read linearizably here."""

    def propose(self, command: bytes, on_done: Callback) -> None:
        """Propose `command` in the region; `on_done` gets the applied result."""

    def replay(self) -> None:
        """Propose the script itself (every replica runs it in apply) and answer with
        its outcome."""

    def done(self, completion: Completion) -> None:
        """The request's outcome: OK with the reply, or a failed read or proposal."""

    def cancelled(self) -> bool:
        """Whether the request was answered meanwhile (its deadline passed)."""


@dataclass
class EffectsCounters:
    """What the leader's effects runs came to."""

    answered: int = 0
    """Scripts that wrote nothing: answered without an entry."""
    applied: int = 0
    """Effects entries applied."""
    stale: int = 0
    """Effects entries that found a key changed and wrote nothing (the script ran again)."""
    replayed: int = 0
    """Scripts replicated as themselves: untrackable, or out of runs under contention."""
    refused: int = 0
    """Scripts whose effects were larger than one entry may be."""


class ScriptEffects:
    """Runs scripts for their effects (module docstring)."""

    def __init__(
        self,
        rng: random.Random,
        clock_ms: Callable[[], int],
        max_entry_bytes: Callable[[], int],
    ) -> None:
        """`clock_ms`: the local wall clock (a run's time is the machine's effective now
        at it); `max_entry_bytes`: the largest entry the node proposes."""
        self._rng = rng
        self._clock_ms = clock_ms
        self._max_entry_bytes = max_entry_bytes
        self.counters = EffectsCounters()
        self.states = StatePool()
        """The Lua states this node's runs reuse (`cairn.store.scripting.pool`)."""

    def start(self, name: str, args: Sequence[bytes], machine: StoreMachine, io: EffectsIo) -> None:
        """Run script command `name` (``eval`` or ``fcall``; `args` without the name) of a
        region led here, whose state `machine` holds, for its effects."""
        self._read_then_run(name, args, machine, io, 0)

    def _read_then_run(
        self, name: str, args: Sequence[bytes], machine: StoreMachine, io: EffectsIo, runs: int
    ) -> None:
        def on_read(done: Completion) -> None:
            if io.cancelled():
                return
            if done.outcome is not Outcome.OK or machine.retired:
                io.done(done if done.outcome is not Outcome.OK else _not_here())
                return
            self._run(name, args, machine, io, runs)

        io.read(on_read)

    def _run(
        self, name: str, args: Sequence[bytes], machine: StoreMachine, io: EffectsIo, runs: int
    ) -> None:
        now_ms = machine.effective_now(self._clock_ms())
        run_name, run_args = name, args
        if name == IDEM_COMMAND:  # IDEMPOTENT <id> <script>: a retry is answered here
            known = known_reply(machine.keyspace, machine.scope, args, now_ms)
            if known is not None:
                self.counters.answered += 1
                io.done(Completion(Outcome.OK, known))
                return
            run_name, run_args = args[3].decode().lower(), args[4:]
        outcome = run_for_effects(
            machine.keyspace,
            machine.scope,
            run_name,
            run_args,
            now_ms,
            self._rng,
            machine.collect_events,
            self.states,
            machine.may_hold_locks,
        )
        if isinstance(outcome, Answer) and name == IDEM_COMMAND:
            self.counters.replayed += 1  # no effects to carry the id: the entry runs it
            io.replay()
        elif isinstance(outcome, Answer):
            self.counters.answered += 1
            io.done(Completion(Outcome.OK, outcome.reply))
        elif isinstance(outcome, Replay):
            self.counters.replayed += 1
            io.replay()
        else:
            self._propose(name, args, machine, io, runs, outcome, now_ms)

    def _propose(
        self,
        name: str,
        args: Sequence[bytes],
        machine: StoreMachine,
        io: EffectsIo,
        runs: int,
        effects: Effects,
        now_ms: int,
    ) -> None:
        payload = encode_effects(effects)
        if name == IDEM_COMMAND:  # the id is recorded in the entry of the effects
            tagged = tag_effects(args, payload)
            if tagged is None:
                io.replay()
                return
            command = encode_command(IDEM_COMMAND, tagged[1:], now_ms)
        else:
            command = encode_command(EFFECTS_COMMAND, [payload], now_ms)
        limit = self._max_entry_bytes()
        if len(command) > limit:
            self.counters.refused += 1
            io.done(Completion(Outcome.OK, effects_too_large(len(command), limit)))
            return

        def on_done(done: Completion) -> None:
            if io.cancelled():
                return
            if done.outcome is not Outcome.OK or done.value != STALE:
                self.counters.applied += done.outcome is Outcome.OK
                io.done(done)
                return
            self.counters.stale += 1
            if runs + 1 >= MAX_RUNS:
                self.counters.replayed += 1
                io.replay()
            else:
                self._read_then_run(name, args, machine, io, runs + 1)

        io.propose(command, on_done)


def _not_here() -> Completion:
    return Completion(Outcome.REJECTED, reason="the region's machine was retired")


def effects_too_large(size: int, limit: int) -> ErrorReply:
    """The reply to a script whose effects do not fit in one entry (nothing written)."""
    return ErrorReply(
        f"ERR the script's effects are too large for one replicated write ({size} bytes; "
        f"limits.max_entry_bytes is {limit}): nothing was written"
    )
