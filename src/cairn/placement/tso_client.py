"""A node's client of the timestamp oracle: batched, failing over, with deadlines.

Theory of operation (PD's client). Callers ask `timestamp(on_ts, on_error, timeout)`; at
most one `TsoRequest` is in flight, and every caller that arrives meanwhile waits for the
next one, which asks for all of them at once (`count` consecutive timestamps, handed out
in the order the callers came). So a node sends one request per round trip however many
transactions start, and each caller gets a timestamp issued after it asked.

A refusal names the member believed to lead: the request goes there at once (a new
request id; a late answer to an older id is dropped, its timestamps never handed out).
A refusal naming no new leader, or an attempt unanswered for `attempt_timeout`, moves
on to the next member after `retry_delay`. A caller whose `timeout` ran out gets
`on_error` instead (its slot in a batch still in flight is then wasted: timestamps are
unique, not dense).

Pure: a `Clock` for timers and a send function; the node (`cairn.runtime.placement_wiring`)
and the simulator route replies to `on_reply`. Callbacks are never called from inside
`timestamp`: always later, from a timer or a reply, and exactly one of them once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.env import Clock, TimerHandle
from cairn.placement.tso import TsoReply, TsoRequest
from cairn.raft.types import NodeId

MAX_TS = (1 << 64) - 1
"""The largest 64-bit timestamp (a reply's batch must end at or below it)."""
OnTimestamp = Callable[[int], None]
"""Receives one timestamp."""
OnError = Callable[[str], None]
"""Receives why no timestamp came before the caller's deadline."""
Members = Callable[[], Sequence[NodeId]]
"""The placement group's members as the node knows them now (empty: not yet known)."""


@dataclass(frozen=True, slots=True)
class TsoClientSettings:
    """The client's timing and limits."""

    attempt_timeout: float = 1.0
    """Seconds before an unanswered request is sent to the next member."""
    retry_delay: float = 0.05
    """Seconds before asking the next member after a refusal that names no new leader."""
    max_batch: int = 4096
    """The most timestamps one request asks for (more callers wait for the next)."""
    max_waiting: int = 100_000
    """The most callers waiting at once; beyond it `timestamp` fails at once."""


@dataclass(slots=True)
class _Caller:
    on_ts: OnTimestamp
    on_error: OnError
    timer: TimerHandle | None = None
    done: bool = False


@dataclass(slots=True)
class _Flight:
    request_id: int
    callers: list[_Caller]
    target: NodeId
    timer: TimerHandle | None = None


@dataclass(slots=True)
class TsoClientStats:
    """What the client did (tests and metrics)."""

    requests: int = 0
    served: int = 0
    refused: int = 0
    timeouts: int = 0
    errors: int = 0


class TsoClient:
    """One node's TSO client (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        clock: Clock,
        send: Callable[[NodeId, TsoRequest], None],
        members: Members,
        settings: TsoClientSettings | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock = clock
        self.send = send
        self.members = members
        self.settings = settings or TsoClientSettings()
        self.stats = TsoClientStats()
        self.target: NodeId = 0
        """The member believed to lead (0: none yet)."""
        self._waiting: deque[_Caller] = deque()
        self._flight: _Flight | None = None
        self._retry: TimerHandle | None = None
        self._next_id = 0
        self._stopped = False

    def timestamp(self, on_ts: OnTimestamp, on_error: OnError, timeout: float) -> None:
        """Get one timestamp: `on_ts(ts)`, or `on_error(reason)` once `timeout` seconds
        passed without one (or the client is stopped or overloaded)."""
        caller = _Caller(on_ts, on_error)
        if self._stopped or len(self._waiting) >= self.settings.max_waiting:
            why = "stopped" if self._stopped else "too many callers waiting for a timestamp"
            caller.timer = self.clock.call_later(0, lambda: self._fail(caller, why))
            return
        caller.timer = self.clock.call_later(
            max(0.0, timeout), lambda: self._fail(caller, "no timestamp within the deadline")
        )
        self._waiting.append(caller)
        if self._flight is None and self._retry is None:
            self._retry = self.clock.call_later(0, self._send_next)

    def _fail(self, caller: _Caller, why: str) -> None:
        if caller.done:
            return
        caller.done = True
        self.stats.errors += 1
        caller.on_error(why)

    # -- requests -------------------------------------------------------------------------

    def _send_next(self) -> None:
        """Send one request for the callers waiting (if any and none is in flight)."""
        self._retry = None
        if self._stopped or self._flight is not None:
            return
        while self._waiting and self._waiting[0].done:
            self._waiting.popleft()
        if not self._waiting:
            return
        members = self.members()
        if not members:
            self._retry_later()
            return
        if self.target not in members:
            self.target = members[0]
        callers: list[_Caller] = []
        while self._waiting and len(callers) < self.settings.max_batch:
            caller = self._waiting.popleft()
            if not caller.done:
                callers.append(caller)
        self._next_id += 1
        flight = _Flight(self._next_id, callers, self.target)
        flight.timer = self.clock.call_later(
            self.settings.attempt_timeout, lambda: self._timed_out(flight)
        )
        self._flight = flight
        self.stats.requests += 1
        self.send(flight.target, TsoRequest(self.node_id, flight.request_id, len(callers)))

    def _retry_later(self) -> None:
        if self._retry is None and not self._stopped:
            self._retry = self.clock.call_later(self.settings.retry_delay, self._send_next)

    def _requeue(self, flight: _Flight) -> None:
        """Put a failed attempt's callers back at the front, in their order."""
        self._flight = None
        if flight.timer is not None:
            flight.timer.cancel()
        self._waiting.extendleft(reversed([c for c in flight.callers if not c.done]))

    def _next_member(self, after: NodeId) -> NodeId:
        members = list(self.members())
        if not members:
            return 0
        i = members.index(after) if after in members else -1
        return members[(i + 1) % len(members)]

    def _timed_out(self, flight: _Flight) -> None:
        if self._flight is not flight:
            return
        self.stats.timeouts += 1
        self._requeue(flight)
        self.target = self._next_member(flight.target)
        self._send_next()

    def on_reply(self, reply: TsoReply) -> None:
        """A member's answer (duplicates, late and unknown ones are dropped)."""
        flight = self._flight
        if self._stopped or flight is None or reply.request_id != flight.request_id:
            return
        if reply.served:
            last = reply.first + reply.count - 1
            if reply.count != len(flight.callers) or reply.first <= 0 or last > MAX_TS:
                return  # not an answer to this request: wait for the attempt's timeout
            self._granted(flight, reply.first)
            return
        self.stats.refused += 1
        self._requeue(flight)
        members = self.members()
        if reply.leader in members and reply.leader != flight.target:
            self.target = reply.leader
            self._send_next()
            return
        self.target = self._next_member(flight.target)
        self._retry_later()

    def _granted(self, flight: _Flight, first: int) -> None:
        self._flight = None
        if flight.timer is not None:
            flight.timer.cancel()
        self.stats.served += 1
        for i, caller in enumerate(flight.callers):
            if caller.done:
                continue
            caller.done = True
            if caller.timer is not None:
                caller.timer.cancel()
            caller.on_ts(first + i)
        self._send_next()

    def stop(self) -> None:
        """Stop for good: every waiting caller gets `on_error` at once."""
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
        callers = list(self._waiting)
        self._waiting.clear()
        if self._flight is not None:
            callers += self._flight.callers
            if self._flight.timer is not None:
                self._flight.timer.cancel()
            self._flight = None
        for caller in callers:
            if caller.timer is not None:
                caller.timer.cancel()
            self._fail(caller, "stopped")
