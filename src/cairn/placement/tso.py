"""The timestamp oracle (TSO): cluster-wide, strictly increasing 64-bit timestamps.

Theory of operation (TiKV's PD). A timestamp is `physical_ms << 18 | logical`: the
leader's wall clock in milliseconds and a counter within that millisecond. The placement
group's leader hands them out from memory, in batches: a request asks for `count`
consecutive timestamps and the reply names the first. Two rules make them strictly
increasing across leader changes and clock skew:

* **The saved bound.** The leader never issues a timestamp whose physical part reaches
  the bound saved in the placement log (`SaveTsoBound`, applied on every member as
  `PlacementMachine.tso_bound_ms`). It renews the bound ahead of time: when fewer than
  `renew_margin_ms` remain, it proposes `now + save_window_ms`. Every timestamp issued
  anywhere, ever, is therefore below every bound applied after it was issued.
* **A new leader commits first.** A member that starts leading term T serves nothing
  until a bound it proposed in T has applied. It starts its physical time at
  `max(its clock, saved bound)`, at or above the bound every earlier leader stayed below,
  so its first timestamp is above every earlier one, whatever either clock said.

A deposed leader that does not know it yet could still hand out timestamps below the new
leader's: so each batch of requests is answered only after a linearizable read of the
group (`Replica.read`: the leader's lease, or a ReadIndex round) confirmed, after the
requests arrived, that this member still led. Any timestamp a newer leader issued was
issued after that confirmation, so a client always sees timestamps grow in real time.

The logical counter holds `2**18` timestamps per millisecond. When a batch would overflow
it, the batch waits for the next millisecond (the physical part advances by one after a
millisecond of the member's clock, even when the wall clock is behind: after a failover
to a member whose clock is late, physical time runs ahead of its clock).

The oracle is lazy: it proposes nothing and runs no timer until the first request of its
term, and it stops renewing after `idle_after_ms` without requests (the next request then
waits for one renewal). The planted bug `tso-backwards` (tests only) makes a new leader
start from its own clock at once, without committing a bound above the saved one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cairn.env import Clock, TimerHandle

LOGICAL_BITS = 18
"""Bits of the logical counter (TiKV's layout)."""
MAX_LOGICAL = 1 << LOGICAL_BITS
"""Timestamps per millisecond."""
MAX_PHYSICAL_MS = (1 << (64 - LOGICAL_BITS)) - 1
"""The largest physical part a 64-bit timestamp holds."""

TSO_BACKWARDS = "tso-backwards"
"""Planted bug (tests only): a new leader serves from its own clock at once, without first
committing a bound above the saved one, so a leader whose clock is behind goes backwards."""
TSO_PLANTS = frozenset({TSO_BACKWARDS})


def compose(physical_ms: int, logical: int) -> int:
    """The timestamp of logical `logical` in millisecond `physical_ms`."""
    return physical_ms << LOGICAL_BITS | logical


def split(ts: int) -> tuple[int, int]:
    """(physical_ms, logical) of timestamp `ts`."""
    return ts >> LOGICAL_BITS, ts & (MAX_LOGICAL - 1)


@dataclass(frozen=True, slots=True)
class SaveTsoBound:
    """Placement command: no timestamp will be issued at or above `bound_ms` (physical
    milliseconds) by a leader that has not committed a higher bound. Applied as a max."""

    bound_ms: int


@dataclass(frozen=True, slots=True)
class TsoRequest:
    """Node `node_id` asks the placement leader for `count` consecutive timestamps."""

    node_id: int
    request_id: int
    count: int

    def describe(self) -> str:
        """A stable one-line rendering for traces."""
        return f"tso-request n{self.node_id} #{self.request_id} x{self.count}"


@dataclass(frozen=True, slots=True)
class TsoReply:
    """Member `member`'s answer to request `request_id` of node `node_id`.

    With `served`, timestamps `first .. first + count - 1` are the node's. Without,
    `leader` names the member this one believes leads (0: none known)."""

    member: int
    node_id: int
    request_id: int
    served: bool
    first: int = 0
    count: int = 0
    leader: int = 0

    def describe(self) -> str:
        """A stable one-line rendering for traces."""
        what = f"{self.first} x{self.count}" if self.served else f"refused, leader {self.leader}"
        return f"tso-reply n{self.member}->n{self.node_id} #{self.request_id} {what}"


@dataclass(frozen=True, slots=True)
class TsoSettings:
    """The oracle's windows and limits."""

    save_window_ms: int = 3000
    """How far ahead of the physical time a saved bound reaches."""
    renew_margin_ms: int = 1000
    """Renew the bound when fewer than this many milliseconds of it are left."""
    update_interval: float = 0.05
    """Seconds between two checks of the bound while requests come."""
    idle_after_ms: int = 10_000
    """Stop renewing after this long without a request."""
    max_count: int = 1 << 16
    """The most timestamps one request may ask for (a larger count is refused)."""
    max_pending: int = 10_000
    """The most requests waiting to be answered; beyond it new ones are refused (each node
    keeps one in flight, so only a misbehaving peer reaches it)."""
    plants: frozenset[str] = frozenset()
    """Planted bugs (`TSO_PLANTS`; tests only)."""

    def __post_init__(self) -> None:
        if not 0 < self.renew_margin_ms < self.save_window_ms:
            raise ValueError("renew_margin_ms must be in (0, save_window_ms)")
        if not 0 < self.max_count <= MAX_LOGICAL:
            raise ValueError(f"max_count must be in [1, {MAX_LOGICAL}]")
        if not self.plants <= TSO_PLANTS:
            raise ValueError(f"unknown TSO plants: {sorted(self.plants - TSO_PLANTS)}")


Grant = Callable[[int | None], None]
"""Receives the first timestamp of a request's batch, or None: refused (not served)."""
Done = Callable[[bool], None]
"""Receives whether a proposal applied, or a read was confirmed."""


class OracleHost(Protocol):
    """What the oracle needs of its placement member."""

    def serving(self) -> bool:
        """Whether the member leads and has applied every entry of earlier terms."""
        ...

    def current_term(self) -> int:
        """The member's Raft term."""
        ...

    def saved_bound(self) -> int:
        """The highest `SaveTsoBound` applied here."""
        ...

    def propose_bound(self, bound_ms: int, done: Done) -> None:
        """Propose `SaveTsoBound(bound_ms)`; `done(True)` once it applied."""
        ...

    def confirm(self, done: Done) -> None:
        """`done(True)` once a linearizable read confirms this member still leads."""
        ...


@dataclass(slots=True)
class OracleStats:
    """What the oracle did (tests and metrics)."""

    requests: int = 0
    timestamps: int = 0
    bounds: int = 0
    waits: int = 0
    refused: int = 0


@dataclass(slots=True)
class _Term:
    """The oracle's state for the term it serves or prepares."""

    term: int
    ready: bool = False
    physical: int = 0
    logical: int = 0
    renewing: bool = False
    confirming: bool = False
    next_ms_due: bool = False
    pending: list[tuple[int, Grant]] = field(default_factory=list)
    """Requests not answered yet, in arrival order."""


class TimestampOracle:
    """One placement member's side of the TSO (see the module docstring)."""

    def __init__(
        self,
        host: OracleHost,
        clock: Clock,
        wall_ms: Callable[[], int],
        settings: TsoSettings | None = None,
    ) -> None:
        self.host = host
        self.clock = clock
        self.wall_ms = wall_ms
        self.settings = settings or TsoSettings()
        self.stats = OracleStats()
        self._state: _Term | None = None
        self._timer: TimerHandle | None = None
        self._last_request = 0.0
        self._stopped = False

    # -- requests -------------------------------------------------------------------------

    def request(self, count: int, grant: Grant) -> None:
        """Ask for `count` consecutive timestamps; `grant` gets the first, or None when this
        member cannot serve them (not the leader, or lost leadership meanwhile)."""
        if self._stopped or not 0 < count <= self.settings.max_count or not self.host.serving():
            self.stats.refused += 1
            grant(None)
            return
        state = self._sync_term()
        if len(state.pending) >= self.settings.max_pending:
            self.stats.refused += 1
            grant(None)
            return
        self.stats.requests += 1
        self._last_request = self.clock.now()
        state.pending.append((count, grant))
        self._arm_timer()
        if state.ready:
            self._serve(state)

    def _sync_term(self) -> _Term:
        """The state of the member's current term, started afresh on a new term."""
        term = self.host.current_term()
        state = self._state
        if state is not None and state.term == term:
            return state
        if state is not None:
            self._refuse(state)
        state = self._state = _Term(term)
        self._prepare(state)
        return state

    def _prepare(self, state: _Term) -> None:
        """A new term: commit a bound above the saved one and this clock, then serve."""
        start = max(self.wall_ms(), self.host.saved_bound(), 1)
        if TSO_BACKWARDS in self.settings.plants:
            start = max(self.wall_ms(), 1)  # the planted bug: the saved bound is ignored
            state.ready, state.physical = True, start
        state.renewing = True
        self.stats.bounds += 1
        self.host.propose_bound(
            start + self.settings.save_window_ms, lambda ok: self._prepared(state, start, ok)
        )

    def _prepared(self, state: _Term, start: int, ok: bool) -> None:
        state.renewing = False
        if state is not self._state:
            return
        if not ok:
            self._state = None  # the next request prepares again
            self._refuse(state)
            return
        if not state.ready:
            state.ready, state.physical, state.logical = True, start, 0
        self._serve(state)

    # -- serving --------------------------------------------------------------------------

    def _serve(self, state: _Term) -> None:
        """Confirm leadership once for the requests pending now, then answer them (those
        arriving meanwhile wait for the next confirmation: one that started before a
        request arrived proves nothing about the time after it was sent)."""
        if state.confirming or not state.pending or state.next_ms_due:
            return
        state.confirming = True
        covered = len(state.pending)
        self.host.confirm(lambda ok: self._confirmed(state, ok, covered))

    def _confirmed(self, state: _Term, ok: bool, covered: int) -> None:
        state.confirming = False
        if state is not self._state:
            return
        if not self.host.serving() or self.host.current_term() != state.term:
            self._state = None
            self._refuse(state)
            return
        if not ok:  # not confirmed in time (still leading): the nodes ask again
            self._refuse(state)
            return
        served = 0
        while served < covered and state.pending:
            count, grant = state.pending[0]
            first = self._allocate(state, count)
            if first is None:
                break
            state.pending.pop(0)
            served += 1
            self.stats.timestamps += count
            grant(first)
        self._maybe_renew(state)
        if served == covered:
            self._serve(state)  # the requests that arrived during the confirmation

    def _allocate(self, state: _Term, count: int) -> int | None:
        """The first of `count` timestamps, or None when the batch must wait: for the next
        millisecond (the logical counter is full) or for a renewed bound."""
        now = self.wall_ms()
        physical, logical = state.physical, state.logical
        if now > physical:
            physical, logical = now, 0
        if logical + count > MAX_LOGICAL:
            self._wait_next_ms(state)
            return None
        if physical >= self.host.saved_bound() or physical > MAX_PHYSICAL_MS:
            self.stats.waits += 1
            self._maybe_renew(state, force=True)
            return None
        state.physical, state.logical = physical, logical + count
        return compose(physical, logical)

    def _wait_next_ms(self, state: _Term) -> None:
        """The logical counter is full: move to the next millisecond a millisecond later."""
        self.stats.waits += 1
        state.next_ms_due = True

        def next_ms() -> None:
            state.next_ms_due = False
            if state is not self._state or self._stopped:
                return
            state.physical, state.logical = state.physical + 1, 0
            self._serve(state)

        self.clock.call_later(0.001, next_ms)

    def _maybe_renew(self, state: _Term, *, force: bool = False) -> None:
        """Propose a bound `save_window_ms` ahead when fewer than `renew_margin_ms` remain
        (or `force`: a batch is waiting for it)."""
        if not state.ready or state.renewing or self._stopped:
            return
        base = max(self.wall_ms(), state.physical)
        if not force and self.host.saved_bound() - base >= self.settings.renew_margin_ms:
            return
        state.renewing = True
        self.stats.bounds += 1
        self.host.propose_bound(
            base + self.settings.save_window_ms, lambda ok: self._renewed(state, ok)
        )

    def _renewed(self, state: _Term, ok: bool) -> None:
        state.renewing = False
        if state is self._state and ok:
            self._serve(state)

    def _refuse(self, state: _Term) -> None:
        pending, state.pending = state.pending, []
        self.stats.refused += len(pending)
        for _, grant in pending:
            grant(None)

    # -- the renewal timer ----------------------------------------------------------------

    def _arm_timer(self) -> None:
        if self._timer is None and not self._stopped:
            self._timer = self.clock.call_later(self.settings.update_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        state = self._state
        if self._stopped or state is None:
            return
        if not self.host.serving() or self.host.current_term() != state.term:
            self._state = None
            self._refuse(state)
            return
        idle = (self.clock.now() - self._last_request) * 1000 >= self.settings.idle_after_ms
        if idle and not state.pending:
            return  # lazy again: the next request re-arms the timer
        self._maybe_renew(state)
        self._serve(state)
        self._arm_timer()

    def stop(self) -> None:
        """Stop for good (the member is gone): no timers, no answers."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state is not None:
            self._state.pending.clear()
