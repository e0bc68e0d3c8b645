"""`Env`: the one narrow interface between a node and the world it runs in.

Theory of operation (after FoundationDB's `INetwork`): everything a node driver needs from
outside — the time, timers, a network to its peers, a durable log, randomness and fault
injection points — comes through the protocols below. Two implementations exist: the
simulator's (`cairn.sim.env`), in virtual time with an in-memory network and a disk that
forgets unsynced writes on a crash; and the real one (asyncio/uvloop, TCP, LMDB), which
implements exactly these protocols. Code written against `Env` therefore runs unchanged
under both, and a simulated run is reproducible from its seed.

The interface is deliberately small and synchronous: callbacks, never coroutines, so the
driver stays a plain state machine that the simulator can step one event at a time.

This package sits on the floor of the package graph (it imports only `cairn.raft.types`):
the pure packages that are written against `Env` and the two worlds that implement it
(`cairn.runtime.real_env`, `cairn.storage`, `cairn.sim`) all import it from below, never
from each other.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cairn.raft.types import EMPTY_HARD_STATE, Entry, HardState, Message, NodeId, Snapshot


class TimerHandle(Protocol):
    """A timer returned by `Clock.call_later`; cancelling an already fired timer is a no-op."""

    def cancel(self) -> None:
        """Make sure the callback will not run (if it has not run yet)."""
        ...


class Clock(Protocol):
    """Monotonic time and timers of one node."""

    def now(self) -> float:
        """Seconds since an arbitrary origin; never goes backwards."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` once, no earlier than `delay` seconds from now."""
        ...


MessageHandler = Callable[[Sequence[Message]], None]
"""Receives a batch of messages from one peer, in the order the peer sent them."""


class Transport(Protocol):
    """Best-effort, unordered, lossy delivery of Raft messages between the nodes of a group.

    Messages may be dropped, delayed, duplicated or reordered; Raft tolerates all of it.
    """

    def send(self, to: NodeId, msgs: Sequence[Message]) -> None:
        """Queue `msgs` for node `to`; never blocks and never raises for a dead peer."""
        ...

    def set_handler(self, handler: MessageHandler) -> None:
        """Register the function that receives this node's incoming messages."""
        ...


@dataclass(frozen=True, slots=True)
class LogBatch:
    """One atomic write to the durable log store.

    Applied in this order: `snapshot` (discarding every stored entry at or below its index,
    and the whole log when the entry at its index has another term), then `entries`
    (truncating the stored suffix they overwrite), then `hard_state`.
    """

    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()
    hard_state: HardState | None = None

    def is_empty(self) -> bool:
        """Whether the batch writes nothing."""
        return self.snapshot is None and not self.entries and self.hard_state is None


@dataclass(frozen=True, slots=True)
class DurableState:
    """What a node's log store holds after a restart: only what survived.

    Invariant: `entries` are contiguous and start right after `snapshot.metadata.index`.
    """

    hard_state: HardState = EMPTY_HARD_STATE
    snapshot: Snapshot = field(default_factory=Snapshot)
    entries: tuple[Entry, ...] = ()

    def is_empty(self) -> bool:
        """Whether nothing was ever written (a brand-new node)."""
        return self.hard_state.is_empty() and not self.entries and self.snapshot.is_empty()


class LogStore(Protocol):
    """The durable Raft log, hard state and snapshot of one node."""

    def write(self, batch: LogBatch, sync: bool) -> None:
        """Write `batch`; when `sync` is true it is durable when this returns.

        Unsynced writes become durable at the next synced write or whenever the
        operating system decides; a crash may lose any of them (but never a prefix of
        writes after a later one survives: writes become durable in order).
        """
        ...

    def load(self) -> DurableState:
        """Everything that is durable now."""
        ...


class Env(Protocol):
    """Everything a node driver may use from the outside world."""

    @property
    def node_id(self) -> NodeId:
        """The identity of the node this environment belongs to."""
        ...

    @property
    def clock(self) -> Clock:
        """Time and timers."""
        ...

    @property
    def transport(self) -> Transport:
        """The network to the other nodes of the group."""
        ...

    @property
    def log_store(self) -> LogStore:
        """The durable log."""
        ...

    @property
    def random(self) -> random.Random:
        """This node's random source (seeded from the run's seed in simulation)."""
        ...

    def buggify(self, site: str) -> bool:
        """Whether to take the unusual path at `site` (FoundationDB's BUGGIFY).

        In simulation each site is enabled for a whole run with probability 1/4 and then
        fires with probability 1/4 per call; the real world always answers False.
        """
        ...
