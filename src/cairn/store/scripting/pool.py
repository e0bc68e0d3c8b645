"""`StatePool`: sandboxed Lua states kept between the runs of a region leader's scripts.

Theory of operation. Building a sandbox (`sandbox.LuaState`: a Lua runtime, the prelude,
the libraries) costs milliseconds; running a small script, tens of microseconds. Redis
keeps one Lua state for its whole life; Cairn keeps a few per node, for the runs a
region's leader makes for a script's effects (`effects.run_for_effects`), which only that
leader makes and whose outcome only it sees (the records it wrote are replicated, not the
run). Runs that every replica makes in apply (a script replicated as itself, a script
inside MULTI) keep a new state each, so every replica runs them from the same state and
agrees on their memory limit (docs/scripting.md).

A state is taken for one run (`acquire`: rebound to the run, `LuaState.bind`) and given
back after it (`release`). It goes back to the pool only if `LuaState.tidy` vouches for it:
the run ended within its budget and memory (a state that hit either, or raised anything
unexpected, is dropped), its values are collected, and nothing the script could reach
but not replace was changed (the string metatable and its `__index`, the read-only
tables). Globals cannot change at all (the environment is a read-only proxy), so the next
run sees exactly what a new state shows. A state also retires after `MAX_RUNS` runs.

Single-threaded, like the node's loop that owns it; a state is never shared by two runs
at once (a script cannot start another: EVAL and FCALL are refused inside scripts).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.store.scripting.sandbox import LuaState, Rand48, ScriptApi, ScriptLimits

IDLE_STATES = 4
"""States a pool keeps idle at most (a node runs one script at a time: one is enough for
the common case, a few cover other limits)."""
MAX_RUNS = 100_000
"""Runs after which a state is dropped rather than kept (a bound on what long life could
accumulate unnoticed, at the cost of one new state per that many runs)."""


@dataclass
class PoolCounters:
    """What a pool did: states built, runs served by a reused state, states dropped."""

    built: int = 0
    reused: int = 0
    dropped: int = 0


class StatePool:
    """A few idle sandboxed Lua states, reused by runs with the same limits."""

    def __init__(self, idle_states: int = IDLE_STATES, max_runs: int = MAX_RUNS) -> None:
        self._idle: list[LuaState] = []
        self._size = idle_states
        self._max_runs = max_runs
        self.counters = PoolCounters()

    def __len__(self) -> int:
        return len(self._idle)

    def idle(self) -> tuple[LuaState, ...]:
        """The idle states, the next to serve last."""
        return tuple(self._idle)

    def acquire(self, limits: ScriptLimits, api: ScriptApi, rand: Rand48) -> LuaState:
        """A state for one run with `limits`, bound to `api` and `rand`: an idle one with
        the same limits (the most recently released), else a new one."""
        for i in range(len(self._idle) - 1, -1, -1):
            if self._idle[i].limits == limits:
                state = self._idle.pop(i)
                state.bind(api, rand)
                self.counters.reused += 1
                return state
        self.counters.built += 1
        return LuaState(limits, api, rand)

    def release(self, state: LuaState) -> None:
        """Give back a state after its run ended normally: kept if it may serve another
        (`LuaState.tidy`), else dropped. A run that raised is never released."""
        if state.runs >= self._max_runs or not state.tidy():
            self.counters.dropped += 1
            return
        if len(self._idle) >= self._size:
            self._idle.pop(0)
        self._idle.append(state)
