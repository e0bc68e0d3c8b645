"""The node's glue for scripts: FUNCTION libraries through the placement group, the
caller's ACL rules handed to a script, and a region leader's EVAL/FCALL run for their
effects (`ScriptEffects`, see `cairn.store.scripting.effects`).

FUNCTION LOAD/DELETE/FLUSH/RESTORE on any node become a `SetFunctions` command of the
placement group (`cairn.store.scripting.front`), replicated by its Raft log and kept in its
metadata and snapshots, as ACL users are; the placement leader pushes the table to every
node (`FUNCTIONS` frames), before it answers the node that asked, so a library loaded
through one node is callable there at once and on every other node a network hop later.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from cairn.placement.commands import Ack, Result, SetFunctions
from cairn.resp.reply import ErrorReply, Reply
from cairn.shard.replica import Completion, Outcome
from cairn.store.acl import describe
from cairn.store.commands.spec import CommandSpec
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.scripting import ScriptFront
from cairn.store.scripting.effects import (
    EFFECTS_COMMAND,
    STALE,
    Answer,
    Effects,
    Replay,
    encode_effects,
    run_for_effects,
)
from cairn.store.scripting.functions import Change

if TYPE_CHECKING:
    from cairn.runtime.acl_commands import AclCommands
    from cairn.runtime.placement_wiring import NodePlacement
    from cairn.shard.host import RegionHost
    from cairn.shard.region import Region


def wire_functions(scripts: ScriptFront, placement: NodePlacement, timeout: float) -> None:
    """Make `scripts`' FUNCTION changes proposals to the placement group, and adopt the
    tables the placement leader pushes (the one pushed before this call first)."""
    libraries = scripts.functions.libraries

    def propose(change: Change, applied: Callable[[bool | None], None]) -> bool:
        def answer(results: tuple[Result, ...] | None) -> None:
            if results is None or len(results) != 1 or not isinstance(results[0], Ack):
                applied(None)
            else:
                applied(results[0].ok)

        command = SetFunctions(change.base, change.items, 0)
        return placement.propose((command,), answer, timeout)

    scripts.functions.propose = propose
    placement.on_functions = libraries.adopt
    if placement.functions_latest is not None:
        libraries.adopt(*placement.functions_latest)


def script_rules(acl: AclCommands, username: str) -> bytes:
    """The canonical ACL rules a script of `username` runs under; empty when the user may
    run everything (nothing to check). A user unknown here was refused before."""
    table = acl.table
    user = table.user(username)
    if user is None or username in table.open_users:
        return b""
    return describe(user, table.catalog).encode("utf-8", "surrogateescape")


class _Request(Protocol):
    """What the runner needs of the node's request record (`node._Request`)."""

    argv: list[bytes]
    spec: CommandSpec
    finished: bool

    @property
    def name(self) -> str: ...

    @property
    def args(self) -> list[bytes]: ...

    def finish(self, reply: Reply) -> None: ...


MAX_RUNS = 3
"""Effects entries a script gets before it is replicated as itself (`ScriptEffects`)."""


@dataclass
class EffectsCounters:
    """What the leader's effects runs came to (INFO-like figures and tests)."""

    answered: int = 0
    """Scripts that wrote nothing: answered without an entry."""
    applied: int = 0
    """Effects entries applied."""
    stale: int = 0
    """Effects entries that found a key changed and wrote nothing (the script ran again)."""
    replayed: int = 0
    """Scripts replicated as themselves: untrackable, or out of runs under contention."""


class ScriptEffects:
    """A region leader's EVAL and FCALL: run once here, replicated by their effects.

    The node hands over every EVAL/FCALL it would propose (`Node._write`). The runner
    waits until the region's applied state is linearizably readable here (the lease or
    a ReadIndex, as a read), runs the script on it (`run_for_effects`), and answers at
    once if it wrote nothing, or proposes its `cairn.effects` entry. An entry that comes
    back `STALE` (a key the script used changed between the run and the apply) wrote
    nothing: the script runs again, up to `MAX_RUNS` entries, then it is proposed as
    itself (`replay`), which every replica runs in apply as before: so a script under
    contention always completes. The client's node runs a script alone in its program
    order (`ProgramOrder.submit(exclusive=True)`), so the state it reads holds every
    earlier command of its client and no later one.
    """

    def __init__(
        self,
        host: RegionHost,
        replay: Callable[[Any, Region], None],
        retry_later: Callable[[Any], None],
        max_entry_bytes: Callable[[], int],
        clock_ms: Callable[[], int],
    ) -> None:
        """`replay(request, region)`: propose the script itself; `retry_later(request)`:
        route it again after a pause (not the leader here, region changed)."""
        self._host = host
        self._replay = replay
        self._retry_later = retry_later
        self._max_entry_bytes = max_entry_bytes
        self._clock_ms = clock_ms
        self._rng = random.Random()
        self.counters = EffectsCounters()

    def start(self, request: _Request, region: Region, machine: StoreMachine) -> None:
        """Run `request` (EVAL or FCALL, routed to `region` led here) for its effects."""
        self._read_then_run(request, region, machine, 0)

    def _read_then_run(
        self, request: _Request, region: Region, machine: StoreMachine, runs: int
    ) -> None:
        if request.finished:
            return
        keys = request.spec.keys(request.argv)

        def on_read(done: Completion) -> None:
            if request.finished:
                return
            if done.outcome is not Outcome.OK or machine.retired:
                self._retry_later(request)
                return
            self._run(request, region, machine, runs)

        self._host.read(region.id, region.epoch, keys[0] if keys else b"", on_read)

    def _run(self, request: _Request, region: Region, machine: StoreMachine, runs: int) -> None:
        now_ms = machine.effective_now(self._clock_ms())
        outcome = run_for_effects(
            machine.keyspace,
            machine.scope,
            request.name,
            request.args,
            now_ms,
            self._rng,
            machine.collect_events,
        )
        if isinstance(outcome, Answer):
            self.counters.answered += 1
            request.finish(outcome.reply)
        elif isinstance(outcome, Replay):
            self.counters.replayed += 1
            self._replay(request, region)
        else:
            self._propose(request, region, machine, runs, outcome, now_ms)

    def _propose(
        self,
        request: _Request,
        region: Region,
        machine: StoreMachine,
        runs: int,
        effects: Effects,
        now_ms: int,
    ) -> None:
        command = encode_command(EFFECTS_COMMAND, [encode_effects(effects)], now_ms)
        limit = self._max_entry_bytes()
        if len(command) > limit:
            request.finish(effects_too_large(len(command), limit))
            return

        def on_done(done: Completion) -> None:
            if done.outcome is Outcome.REJECTED:
                self._retry_later(request)
            elif done.outcome is not Outcome.OK:
                request.finish(UNCERTAIN)
            elif done.value != STALE:
                self.counters.applied += 1
                request.finish(cast(Reply, done.value))
            else:
                self.counters.stale += 1
                if runs + 1 >= MAX_RUNS:
                    self.counters.replayed += 1
                    self._replay(request, region)
                else:
                    self._read_then_run(request, region, machine, runs + 1)

        self._host.propose(region.id, region.epoch, command, on_done)


UNCERTAIN = ErrorReply(
    "UNCERTAIN the write may or may not have been applied (leadership changed or it timed out)"
)
"""As the node answers a write whose outcome it cannot know (`node.UNCERTAIN`)."""


def effects_too_large(size: int, limit: int) -> ErrorReply:
    """The reply to a script whose effects do not fit in one entry (nothing written)."""
    return ErrorReply(
        f"ERR the script's effects are too large for one replicated write ({size} bytes; "
        f"limits.max_entry_bytes is {limit}): nothing was written"
    )
