"""Scripted fault scenarios: the classic ways a Raft bug turns into a visible violation.

Theory of operation. The random nemesis finds most bugs, but a few need a sequence of
faults that random scheduling rarely lines up: the Raft paper's Figure 8, two candidates
splitting a vote, an isolated leader that still believes it leads. A scenario is a small
state machine driven by the cluster's fault hooks (a node granted a vote, became leader,
advanced its commit index) and by its own timers. It observes only what an operator or a
Jepsen nemesis could observe — who leads, who voted, that a commit index moved — never
the planted bug, so with the bug switched off the same schedule must stay safe (the tests
check exactly that). Every decision draws from the run's random source, every fault is
counted, and every attempt that stalls is undone by a watchdog, so a run never wedges.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Protocol

from cairn.raft.rawnode import LogView
from cairn.raft.types import NONE, NodeId
from cairn.sim.cluster import Cluster, NodeState
from cairn.sim.network import cut_between, isolate

MS = 1_000_000


class Scenario(enum.Enum):
    """A scripted fault schedule a run may follow, on top of its random faults."""

    NONE = "none"
    FIGURE_8 = "figure-8"
    """Leave an entry of an old term on a bare majority, then let a node that lacks it lead."""
    SPLIT_VOTE = "split-vote"
    """Kill the leader so that several candidates campaign in one term."""
    STALE_LEADER = "stale-leader"
    """Cut the leader off from its peers (not from clients) while a new one is elected."""


class FaultTools(Protocol):
    """What a scenario may do to the cluster (the `Nemesis` provides it)."""

    @property
    def cluster(self) -> Cluster:
        """The cluster under test."""
        ...

    @property
    def active(self) -> bool:
        """False once the run has started to settle: scenarios then stop acting."""
        ...

    def count(self, name: str) -> None:
        """Count (and trace) one fault."""
        ...

    def later(self, delay: int, label: str, action: Callable[[], None]) -> None:
        """Run `action` after `delay` virtual nanoseconds."""
        ...

    def crash(self, node_id: NodeId, down_for: int | None) -> None:
        """Crash a node that is up; restart it after `down_for` (None: stays down)."""
        ...


class Script:
    """A scenario's state machine; the hooks do nothing unless a subclass cares."""

    def __init__(self, tools: FaultTools, rng: random.Random) -> None:
        self.tools = tools
        self.rng = rng

    def start(self) -> None:
        """Begin the scenario (called once, when the nemesis starts)."""

    def after_vote(self, node_id: NodeId) -> None:
        """`node_id` just granted a vote."""

    def after_election(self, node_id: NodeId) -> None:
        """`node_id` just became leader."""

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        """`node_id`, a leader, just persisted commit index `commit`."""


class _Phase(enum.Enum):
    IDLE = "idle"
    SPLIT = "split"
    ISOLATED = "isolated"
    CATCH_UP = "catch-up"
    SETTLE = "settle"


class Figure8(Script):
    """The Raft paper's Figure 8, one attempt after another.

    1. *split*: cut the leader L and f-1 followers (side A, a minority) from the others
       (side B). L keeps taking client writes that only A stores.
    2. *isolated*: the moment B elects a leader M, cut M off alone: M holds one entry of
       its new term (its no-op) at an index where A holds L's entries, and nobody else
       got it.
    3. *catch-up*: A's longer logs win the next election on the 2f connected nodes (some
       P in A). At once the rest of A crashes, so P needs all of B but M for a quorum and
       brings them up to date, one entry per message when `max_size_per_msg` is small.
    4. *settle*: the moment P's commit index reaches the first index where P's log and
       M's differ, P crashes and the partition heals. If P committed an entry of an
       earlier term there before its own no-op reached a quorum, M — whose last term is
       newer than what B holds — can now be elected without the committed entry. A
       correct P commits there only together with its no-op, which then sits on all of
       B and keeps M out.
    The crashed nodes restart after a while, and the next attempt begins.
    """

    def __init__(self, tools: FaultTools, rng: random.Random) -> None:
        super().__init__(tools, rng)
        self.phase = _Phase.IDLE
        self.attempt = 0
        self.side_a: tuple[NodeId, ...] = ()
        self.side_b: tuple[NodeId, ...] = ()
        self.isolated = NONE
        self.new_leader = NONE
        self.conflict = 0

    def start(self) -> None:
        """See `Script.start`."""
        self._next_attempt(100 * MS, 300 * MS)

    def _next_attempt(self, lo: int, hi: int) -> None:
        self.phase = _Phase.IDLE
        self.attempt += 1
        attempt = self.attempt
        self.tools.later(self.rng.randint(lo, hi), "figure-8 begin", lambda: self._begin(attempt))

    def _enter(self, phase: _Phase, timeout: int) -> None:
        """Move to `phase`; if it has not moved on after `timeout`, give up the attempt."""
        self.phase = phase
        attempt = self.attempt

        def watchdog() -> None:
            if self.attempt == attempt and self.phase is phase:
                self.tools.count(f"figure-8:stalled-{phase.value}")
                self._abort()

        self.tools.later(timeout, f"figure-8 watchdog {phase.value}", watchdog)

    def _begin(self, attempt: int) -> None:
        if not self.tools.active or attempt != self.attempt:
            return
        cluster = self.tools.cluster
        leader = cluster.leader()
        if leader is None or cluster.network.cut or cluster.ids(NodeState.DOWN):
            self._next_attempt(50 * MS, 150 * MS)
            return
        voters = sorted(leader.conf_state.voters)
        others = [v for v in voters if v != leader.node_id]
        side_a = [leader.node_id, *self.rng.sample(others, len(voters) // 2 - 1)]
        self.side_a = tuple(sorted(side_a))
        self.side_b = tuple(n for n in cluster.ids(None) if n not in side_a)
        cluster.network.set_partition(cut_between([self.side_a, self.side_b]))
        self.tools.count("figure-8:split")
        self._enter(_Phase.SPLIT, 1500 * MS)

    def after_election(self, node_id: NodeId) -> None:
        """See `Script.after_election`."""
        if not self.tools.active:
            return
        if self.phase is _Phase.SPLIT and node_id in self.side_b:
            self.isolated = node_id
            self.tools.later(0, "figure-8 isolate", self._isolate_new_leader)
            self._enter(_Phase.ISOLATED, 1500 * MS)
        elif self.phase is _Phase.ISOLATED and node_id in self.side_a:
            replica = self.tools.cluster.replica(node_id)
            assert replica is not None
            self.new_leader = node_id
            self.conflict = self._first_conflict(replica.raw.log)
            self.tools.later(0, "figure-8 crash side A", self._crash_rest_of_a)
            self._enter(_Phase.CATCH_UP, 1000 * MS)
        elif self.phase is _Phase.ISOLATED and node_id != self.isolated:
            self.phase = _Phase.SETTLE
            self.tools.later(0, "figure-8 abort", self._abort)

    def _first_conflict(self, log: LogView) -> int:
        """The first index past `log`'s commit where the isolated M's log differs from it
        (just past the commit when M's log is a prefix of it, or M is gone)."""
        start = log.committed + 1
        m_replica = self.tools.cluster.replica(self.isolated)
        if m_replica is None:
            return start
        m_log = m_replica.raw.log
        for index in range(start, min(log.last_index(), m_log.last_index()) + 1):
            if m_log.term(index) != log.term(index):
                return index
        return start

    def _isolate_new_leader(self) -> None:
        if self.phase is _Phase.ISOLATED:
            network = self.tools.cluster.network
            network.set_partition(isolate(self.isolated, self.tools.cluster.ids(None)))
            self.tools.count("figure-8:isolate")

    def _crash_rest_of_a(self) -> None:
        for node_id in self.side_a:
            if node_id != self.new_leader:
                self.tools.crash(node_id, None)

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        """See `Script.after_commit`."""
        if (
            self.tools.active
            and self.phase is _Phase.CATCH_UP
            and node_id == self.new_leader
            and commit >= self.conflict
        ):
            self.phase = _Phase.SETTLE
            self.tools.later(0, "figure-8 crash new leader", self._crash_new_leader)

    def _crash_new_leader(self) -> None:
        self.tools.crash(self.new_leader, None)
        self.tools.cluster.network.heal()
        self.tools.count("figure-8:committed")
        attempt = self.attempt
        self.tools.later(
            self.rng.randint(400 * MS, 800 * MS),
            "figure-8 restart",
            lambda: self._finish(attempt),
        )

    def _finish(self, attempt: int) -> None:
        if attempt == self.attempt:
            self._abort()

    def _abort(self) -> None:
        """Heal, restart whatever is down, and try again later."""
        if not self.tools.active:
            return
        cluster = self.tools.cluster
        cluster.network.heal()
        for node_id in cluster.ids(NodeState.DOWN):
            cluster.start(node_id)
            self.tools.count("restart")
        self._next_attempt(200 * MS, 600 * MS)


class SplitVote(Script):
    """Two candidates in one term, and voters that crash the moment they vote.

    Each attempt: crash the leader and restart it at once, so every node is a follower
    without a leader; once their leases have lapsed (`election_tick` ticks without a
    heartbeat), fire the election timers of two nodes together — the split vote that
    randomized timeouts make rare but never impossible. Every node that grants a vote
    then crashes within a millisecond and restarts at once, as under a supervisor: what
    it did not fsync is lost, and vote requests still in flight reach the new process.
    A voter that forgot its vote can grant the other candidate the same term.
    """

    def __init__(self, tools: FaultTools, rng: random.Random) -> None:
        super().__init__(tools, rng)
        self.voting = False
        self.attempt = 0

    def start(self) -> None:
        """See `Script.start`."""
        self._next_attempt()

    def _next_attempt(self) -> None:
        self.voting = False
        self.attempt += 1
        attempt = self.attempt
        delay = self.rng.randint(150 * MS, 400 * MS)
        self.tools.later(delay, "split-vote begin", lambda: self._begin(attempt))

    def _begin(self, attempt: int) -> None:
        if not self.tools.active or attempt != self.attempt:
            return
        leader = self.tools.cluster.leader()
        if leader is None:
            self._next_attempt()
            return
        self.tools.count("split-vote:kill-leader")
        self.tools.crash(leader.node_id, 0)
        delay = self.rng.randint(105 * MS, 125 * MS)
        self.tools.later(delay, "split-vote campaign", lambda: self._campaign(attempt))

    def _campaign(self, attempt: int) -> None:
        if not self.tools.active or attempt != self.attempt:
            return
        cluster = self.tools.cluster
        candidates = self.rng.sample(cluster.ids(), 2)
        self.voting = True
        self.tools.count("split-vote:campaign")
        for node_id in candidates:
            replica = cluster.replica(node_id)
            if replica is not None:
                replica.campaign()
        self.tools.later(self.rng.randint(100 * MS, 200 * MS), "split-vote end", self._next_attempt)

    def after_vote(self, node_id: NodeId) -> None:
        """See `Script.after_vote`."""
        if not self.tools.active or not self.voting:
            return
        self.tools.count("split-vote:crash-voter")
        delay = self.rng.randint(0, 1 * MS)
        self.tools.later(delay, "split-vote crash voter", lambda: self.tools.crash(node_id, 0))


class StaleLeader(Script):
    """Cut the leader off from its peers, but not from its clients, again and again.

    The old leader goes on believing it leads until its check-quorum round notices the
    silence (up to two election timeouts of its own clock), while the others elect a new
    leader after one to two election timeouts of theirs. Clients that keep reading at the
    old leader and clients that move on and write at the new one meet in that window:
    a read the old leader serves without a valid lease misses a write that completed
    before it, which the linearizability checker reports.
    """

    def __init__(self, tools: FaultTools, rng: random.Random) -> None:
        super().__init__(tools, rng)
        self.attempt = 0

    def start(self) -> None:
        """See `Script.start`."""
        self._next_attempt()

    def _next_attempt(self) -> None:
        self.attempt += 1
        attempt = self.attempt
        delay = self.rng.randint(100 * MS, 300 * MS)
        self.tools.later(delay, "stale-leader begin", lambda: self._begin(attempt))

    def _begin(self, attempt: int) -> None:
        if not self.tools.active or attempt != self.attempt:
            return
        cluster = self.tools.cluster
        leader = cluster.leader()
        if leader is None or cluster.network.cut:
            self._next_attempt()
            return
        cut = isolate(leader.node_id, cluster.ids(None))
        cluster.network.set_partition(cut)
        self.tools.count("stale-leader:isolate")
        duration = self.rng.randint(250 * MS, 500 * MS)
        self.tools.later(duration, "stale-leader heal", lambda: self._heal(attempt, cut))

    def _heal(self, attempt: int, cut: frozenset[tuple[NodeId, NodeId]]) -> None:
        if attempt != self.attempt:
            return
        if self.tools.cluster.network.cut == cut:
            self.tools.cluster.network.heal()
        self._next_attempt()


SCRIPTS: dict[Scenario, Callable[[FaultTools, random.Random], Script]] = {
    Scenario.FIGURE_8: Figure8,
    Scenario.SPLIT_VOTE: SplitVote,
    Scenario.STALE_LEADER: StaleLeader,
}
"""The script class of each scenario (`Scenario.NONE` has none)."""
