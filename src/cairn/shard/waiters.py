"""`Waiters`: clients blocked on keys (BLPOP, BZPOPMIN, BLMOVE, ...), woken by applied writes.

Theory of operation. A blocking command is a Raft write like any other. Applied, it
either serves the client or finds every key empty and returns `Blocked` (nothing written).
The node the client is connected to keeps the client here and proposes the command again
(routed afresh, so to whichever node leads the key's region now) each time an applied
entry touches one of its keys, until it is served or its timeout passes. Every node
applies every entry of the regions it hosts, so the client's own node sees the writes
that may have filled its keys, whether it leads the region or follows it, and a leader
change or a region moving between nodes needs nothing special: the next attempt is routed
like any command.

No wake-up is lost: a waiter is registered (PENDING) before its first attempt is
proposed, and an entry that touches its keys after that is necessarily applied here
after the registration. An entry applied while an attempt is in flight marks the waiter
dirty; if that attempt comes back `Blocked`, it is proposed again at once instead of
parked. A PARKED waiter is woken by the next touching entry.

Order: clients blocked on one key are woken first come, first served, on this node; the
Raft log orders their attempts, so across nodes the first attempt to reach the log wins
(Redis Cluster has no cross-node order either). An entry that only pops (a served BLPOP,
LPOP, ZPOPMIN) cannot make a key non-empty, so it wakes no one: the caller passes only the
keys a write may fill (`wake_keys`).

Pure logic: no clock, no I/O. The node owns the timers and the proposals.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


class WaitState(enum.Enum):
    """Where a waiter is: an attempt in flight, parked until a touching write, or done."""

    PENDING = "pending"
    PARKED = "parked"
    DONE = "done"


@dataclass(eq=False, slots=True)
class Waiter:
    """One blocked client command.

    `attempt` proposes the command once more; the node calls `Waiters.blocked` or
    `Waiters.finish` with its outcome.
    """

    keys: tuple[bytes, ...]
    attempt: Callable[[], None]
    state: WaitState = WaitState.PENDING
    dirty: bool = False
    """A touching entry was applied while an attempt was in flight."""
    attempts: int = field(default=0)


class Waiters:
    """Every client blocked on this node, by key, in arrival order."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, dict[Waiter, None]] = {}
        self._count = 0

    def __len__(self) -> int:
        """The number of waiters not yet done."""
        return self._count

    def add(self, waiter: Waiter) -> None:
        """Register `waiter` (PENDING) and make its first attempt."""
        for key in waiter.keys:
            self._by_key.setdefault(key, {})[waiter] = None
        self._count += 1
        self._run(waiter)

    def blocked(self, waiter: Waiter) -> None:
        """An attempt of `waiter` found its keys empty: try again at once if a touching
        entry was applied meanwhile, else park it until one is."""
        if waiter.state is not WaitState.PENDING:
            return
        if waiter.dirty:
            self._run(waiter)
        else:
            waiter.state = WaitState.PARKED

    def finish(self, waiter: Waiter) -> None:
        """`waiter` is done (served, timed out, failed, or its client left)."""
        if waiter.state is WaitState.DONE:
            return
        waiter.state = WaitState.DONE
        self._count -= 1
        for key in waiter.keys:
            queue = self._by_key.get(key)
            if queue is not None:
                queue.pop(waiter, None)
                if not queue:
                    del self._by_key[key]

    def touched(self, keys: Iterable[bytes]) -> None:
        """An applied entry may have filled `keys`: wake the parked waiters on them (first
        come, first served) and mark the ones with an attempt in flight."""
        woken: list[Waiter] = []
        for key in keys:
            for waiter in self._by_key.get(key, ()):
                if waiter.state is WaitState.PENDING:
                    waiter.dirty = True
                elif waiter.state is WaitState.PARKED:
                    waiter.state = WaitState.PENDING
                    woken.append(waiter)
        for waiter in woken:
            self._run(waiter)

    def _run(self, waiter: Waiter) -> None:
        waiter.state = WaitState.PENDING
        waiter.dirty = False
        waiter.attempts += 1
        waiter.attempt()


_MOVES_TO_DESTINATION = frozenset({"blmove", "brpoplpush"})


def wait_keys(name: str, keys: Sequence[bytes]) -> tuple[bytes, ...]:
    """The keys blocking command `name` (with key arguments `keys`) waits on: all of them,
    but the source alone for a move (BLMOVE, BRPOPLPUSH)."""
    return tuple(keys[:1]) if name in _MOVES_TO_DESTINATION else tuple(keys)


def wake_keys(name: str, keys: Sequence[bytes], blocking: bool) -> Sequence[bytes]:
    """The keys an applied write `name` on `keys` may have made non-empty: all of them,
    except that a blocking command only pops (none), or moves into its destination."""
    if not blocking:
        return keys
    return keys[1:] if name in _MOVES_TO_DESTINATION else ()
