"""Scripted fault sequences against one region of a multi-region run.

A random schedule over many groups rarely lines up the moments a bug needs, so a script
watches one region (the first founded, id 1) through the nemesis' hooks — a node became
its leader, its leader persisted a commit index — and acts on whole nodes (partitions,
crashes). A script observes only what an operator could (who leads, that a commit index
moved), never the planted bug, so with no bug the same schedule must stay safe; every
attempt that stalls is undone by a watchdog, so a run never wedges.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Protocol

from cairn.raft.rawnode import LogView
from cairn.raft.types import NONE, NodeId
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import cut_between, isolate

MS = 1_000_000
TARGET = 1
"""The region a script watches: the first founded one."""


class RegionTools(Protocol):
    """What a script may do (the `RegionNemesis` provides it)."""

    @property
    def cluster(self) -> MultiCluster:
        """The cluster under test."""
        ...

    @property
    def active(self) -> bool:
        """False once the run has started to converge: scripts then stop acting."""
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


class _Phase(enum.Enum):
    IDLE = "idle"
    SPLIT = "split"
    ISOLATED = "isolated"
    CATCH_UP = "catch-up"
    SETTLE = "settle"


class RegionFigure8:
    """The Raft paper's Figure 8 on region `TARGET`, one attempt after another: leave an
    entry of an old term on a bare majority, then let a node that lacks it lead.

    1. *split*: cut the region's leader L and f-1 of its voters' nodes (side A) from the
       other nodes (side B); L keeps taking writes only A stores.
    2. *isolated*: the moment B elects a leader M, cut M's node off alone.
    3. *catch-up*: the moment a node P of A leads again, crash the rest of A, so P must
       bring B up to date, one entry per message.
    4. *settle*: the moment P's commit index reaches the first index where P's log and
       M's differ, crash P and heal: if P committed an earlier term's entry there before
       its own no-op reached a quorum, M can be elected without it.
    """

    def __init__(self, tools: RegionTools, rng: random.Random) -> None:
        self.tools = tools
        self.rng = rng
        self.phase = _Phase.IDLE
        self.attempt = 0
        self.side_a: tuple[NodeId, ...] = ()
        self.side_b: tuple[NodeId, ...] = ()
        self.isolated = NONE
        self.new_leader = NONE
        self.conflict = 0

    def start(self) -> None:
        """Begin the first attempt."""
        self._next_attempt(100 * MS, 300 * MS)

    def _next_attempt(self, lo: int, hi: int) -> None:
        self.phase = _Phase.IDLE
        self.attempt += 1
        attempt = self.attempt
        self.tools.later(self.rng.randint(lo, hi), "figure-8 begin", lambda: self._begin(attempt))

    def _enter(self, phase: _Phase, timeout: int) -> None:
        self.phase = phase
        attempt = self.attempt

        def watchdog() -> None:
            if self.attempt == attempt and self.phase is phase:
                self.tools.count(f"figure-8:stalled-{phase.value}")
                self._abort()

        self.tools.later(timeout, f"figure-8 watchdog {phase.value}", watchdog)

    def _leader_node(self) -> NodeId | None:
        cluster = self.tools.cluster
        for node_id in cluster.live():
            host = cluster.host(node_id)
            peer = host.peers.get(TARGET) if host is not None else None
            if peer is not None and peer.replica.is_leader:
                return node_id
        return None

    def _log(self, node_id: NodeId) -> LogView | None:
        host = self.tools.cluster.host(node_id)
        peer = host.peers.get(TARGET) if host is not None else None
        return peer.replica.raw.log if peer is not None else None

    def _begin(self, attempt: int) -> None:
        if not self.tools.active or attempt != self.attempt:
            return
        cluster = self.tools.cluster
        leader = self._leader_node()
        down = [n for n, node in cluster.nodes.items() if not node.up and not node.lost]
        if leader is None or cluster.network.cut or down:
            self._next_attempt(50 * MS, 150 * MS)
            return
        host = cluster.host(leader)
        assert host is not None
        voters = sorted(p.node_id for p in host.peers[TARGET].region.voters())
        others = [v for v in voters if v != leader]
        side_a = [leader, *self.rng.sample(others, len(voters) // 2 - 1)]
        self.side_a = tuple(sorted(side_a))
        self.side_b = tuple(n for n in cluster.live() if n not in side_a)
        cluster.network.set_partition(cut_between([self.side_a, self.side_b]))
        self.tools.count("figure-8:split")
        self._enter(_Phase.SPLIT, 1500 * MS)

    def after_election(self, node_id: NodeId, region_id: int) -> None:
        """A node became `region_id`'s leader."""
        if not self.tools.active or region_id != TARGET:
            return
        if self.phase is _Phase.SPLIT and node_id in self.side_b:
            self.isolated = node_id
            self.tools.later(0, "figure-8 isolate", self._isolate_new_leader)
            self._enter(_Phase.ISOLATED, 1500 * MS)
        elif self.phase is _Phase.ISOLATED and node_id in self.side_a:
            log = self._log(node_id)
            if log is None:
                return
            self.new_leader = node_id
            self.conflict = self._first_conflict(log)
            self.tools.later(0, "figure-8 crash side A", self._crash_rest_of_a)
            self._enter(_Phase.CATCH_UP, 1000 * MS)
        elif self.phase is _Phase.ISOLATED and node_id != self.isolated:
            self.phase = _Phase.SETTLE
            self.tools.later(0, "figure-8 abort", self._abort)

    def _first_conflict(self, log: LogView) -> int:
        start = log.committed + 1
        m_log = self._log(self.isolated)
        if m_log is None:
            return start
        for index in range(start, min(log.last_index(), m_log.last_index()) + 1):
            if m_log.term(index) != log.term(index):
                return index
        return start

    def _isolate_new_leader(self) -> None:
        if self.phase is _Phase.ISOLATED:
            cluster = self.tools.cluster
            cluster.network.set_partition(isolate(self.isolated, cluster.live()))
            self.tools.count("figure-8:isolate")

    def _crash_rest_of_a(self) -> None:
        for node_id in self.side_a:
            if node_id != self.new_leader:
                self.tools.crash(node_id, None)

    def after_commit(self, node_id: NodeId, region_id: int, commit: int) -> None:
        """`node_id`, leading `region_id`, persisted a commit index of `commit`."""
        if (
            self.tools.active
            and region_id == TARGET
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
            self.rng.randint(400 * MS, 800 * MS), "figure-8 restart", lambda: self._finish(attempt)
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
        for node_id, node in sorted(cluster.nodes.items()):
            if not node.up and not node.lost:
                cluster.start(node_id)
                self.tools.count("restart")
        self._next_attempt(200 * MS, 600 * MS)


SCENARIOS = ("figure-8",)
"""The scripts a multi-region run may follow (`RegionSimConfig.scenario`)."""
