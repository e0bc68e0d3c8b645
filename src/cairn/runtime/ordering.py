"""Program order for one client's pipelined commands.

Redis runs a connection's commands one after another, so a pipeline `SET k v; GET k`
reads `v`. Cairn runs them concurrently where that cannot be observed: writes may be in
flight together (the log keeps their order) and so may reads, but a read starts only once
every earlier write has completed, and a write only once every earlier read has, so no
command sees the effects of a later one or misses those of an earlier one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

Start = Callable[[Callable[[], None]], None]
"""Begins a command; it must call the function it is given once, when the command ends."""


class ProgramOrder:
    """Admits one client's commands in an order equivalent to running them one by one."""

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0
        self._waiting: deque[tuple[bool, Start]] = deque()

    def submit(self, is_write: bool, start: Start) -> None:
        """Start the command now if no earlier command conflicts, else queue it."""
        if self.admits(is_write):
            self._start(is_write, start)
        else:
            self._waiting.append((is_write, start))

    def admits(self, is_write: bool) -> bool:
        """Whether a command submitted now would start at once (none earlier conflicts).

        A command that also ends before anything else is submitted need not be submitted
        at all: the node serves such reads inline."""
        return not self._waiting and self._may_start(is_write)

    def _may_start(self, is_write: bool) -> bool:
        return self.reads == 0 if is_write else self.writes == 0

    def _start(self, is_write: bool, start: Start) -> None:
        if is_write:
            self.writes += 1
        else:
            self.reads += 1
        start(lambda: self._finished(is_write))

    def _finished(self, is_write: bool) -> None:
        if is_write:
            self.writes -= 1
        else:
            self.reads -= 1
        while self._waiting and self._may_start(self._waiting[0][0]):
            self._start(*self._waiting.popleft())
