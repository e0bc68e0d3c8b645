"""The simulator's event loop: virtual time, one heap of events, a running trace digest.

Theory of operation. Time is an integer count of virtual nanoseconds that jumps straight to
the next event; events are ordered by `(time, sequence)`, so two events due at the same
instant run in the order they were scheduled and a run is a pure function of its seed.
Every event belongs to an owner (a node, or 0 for the harness): a paused owner's events are
held back and re-queued, in their original order, when it resumes — like a stopped
process whose timers and sockets fire late. Each executed event's label is fed to a
SHA-256 digest, the determinism witness compared across runs of one seed.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

NS_PER_SECOND = 1_000_000_000
HARNESS = 0
"""The owner of events that belong to no node (clients, nemesis)."""


@dataclass(slots=True, eq=False)
class Event:
    """A scheduled callback; `cancel()` makes it a no-op when its time comes."""

    time: int
    seq: int
    owner: int
    label: str
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        """Do not run this event."""
        self.cancelled = True

    def __lt__(self, other: Event) -> bool:
        return (self.time, self.seq) < (other.time, other.seq)


@dataclass(slots=True)
class EventLoop:
    """Runs events in virtual time; `steps` counts the events executed so far."""

    now: int = 0
    steps: int = 0
    _seq: int = 0
    _heap: list[Event] = field(default_factory=list)
    _paused: dict[int, list[Event]] = field(default_factory=dict)
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    trace: list[str] | None = None

    def call_at(self, time: int, owner: int, label: str, callback: Callable[[], None]) -> Event:
        """Schedule `callback` at virtual time `time` (never in the past)."""
        self._seq += 1
        event = Event(max(time, self.now), self._seq, owner, label, callback)
        heapq.heappush(self._heap, event)
        return event

    def call_later(self, delay: int, owner: int, label: str, callback: Callable[[], None]) -> Event:
        """Schedule `callback` `delay` nanoseconds from now."""
        return self.call_at(self.now + max(0, delay), owner, label, callback)

    def pause(self, owner: int) -> None:
        """Hold back `owner`'s events until `resume`."""
        self._paused.setdefault(owner, [])

    def is_paused(self, owner: int) -> bool:
        """Whether `owner` is paused."""
        return owner in self._paused

    def resume(self, owner: int) -> None:
        """Re-queue `owner`'s held events now, in the order they were due."""
        for event in self._paused.pop(owner, []):
            self.call_at(self.now, owner, event.label, event.callback)

    def record(self, text: str) -> None:
        """Add a line to the trace digest (for facts that are not events)."""
        self._digest.update(f"{self.now} {text}\n".encode())
        if self.trace is not None:
            self.trace.append(f"{self.now} {text}")

    def run_one(self) -> bool:
        """Run the next due event; False when nothing is left to run."""
        while self._heap:
            event = heapq.heappop(self._heap)
            if event.cancelled:
                continue
            if event.owner in self._paused:
                self._paused[event.owner].append(event)
                continue
            self.now = event.time
            self.steps += 1
            self.record(event.label)
            event.callback()
            return True
        return False

    def digest(self) -> str:
        """The hex SHA-256 of every trace line so far."""
        return self._digest.hexdigest()
