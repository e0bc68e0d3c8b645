"""Program order for one client's pipelined commands.

Redis runs a connection's commands one after another, so a pipeline `SET k v; GET k`
reads `v`. Cairn runs them concurrently where that cannot be observed: writes may be in
flight together (the log keeps their order) and so may reads, but a read starts only once
every earlier write has completed, and a write only once every earlier read has, so no
command sees the effects of a later one or misses those of an earlier one. An exclusive
command (a script, which the leader runs on its state and then replicates by its
effects: it reads like a read and writes like a write) starts only once every earlier
command has completed, and no later one starts before it completes: it counts as both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

Start = Callable[[Callable[[], None]], None]
"""Begins a command; it must call the function it is given once, when the command ends."""


_READ, _WRITE, _EXCLUSIVE = 0, 1, 2


class ProgramOrder:
    """Admits one client's commands in an order equivalent to running them one by one.

    Invariant: a running exclusive command counts in both `reads` and `writes`.
    """

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0
        self._waiting: deque[tuple[int, Start]] = deque()

    def submit(self, is_write: bool, start: Start, exclusive: bool = False) -> None:
        """Start the command now if no earlier command conflicts, else queue it;
        `exclusive`: it conflicts with every other command (module docstring)."""
        kind = _EXCLUSIVE if exclusive else int(is_write)
        if not self._waiting and self._may_start(kind):
            self._start(kind, start)
        else:
            self._waiting.append((kind, start))

    def admits(self, is_write: bool) -> bool:
        """Whether a command submitted now would start at once (none earlier conflicts).

        A command that also ends before anything else is submitted need not be submitted
        at all: the node serves such reads inline."""
        return not self._waiting and self._may_start(int(is_write))

    def _may_start(self, kind: int) -> bool:
        if kind == _READ:
            return self.writes == 0
        if kind == _WRITE:
            return self.reads == 0
        return self.reads == 0 and self.writes == 0

    def _start(self, kind: int, start: Start) -> None:
        self.reads += kind != _WRITE
        self.writes += kind != _READ
        start(lambda: self._finished(kind))

    def _finished(self, kind: int) -> None:
        self.reads -= kind != _WRITE
        self.writes -= kind != _READ
        while self._waiting and self._may_start(self._waiting[0][0]):
            self._start(*self._waiting.popleft())
