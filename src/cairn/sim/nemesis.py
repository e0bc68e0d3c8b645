"""The nemesis: injects faults on a random schedule drawn from the run's seed.

Theory of operation. Network faults (drop, duplicate, long delays, reordering) are
properties of the `SimNetwork` for the whole run. The scheduled faults fire one at a time,
every 20 to 200 ms of virtual time: partitions (halves, isolate the leader, majority ring,
bridge) healed after a while, crashes followed by restarts, pauses followed by resumes,
membership changes (add a learner, promote it, remove a voter), and leadership transfers.
Crashes also strike "at interesting times": right after a node grants a vote, when a
missing fsync would let it forget the vote, and right after it wins an election. A run
may also follow a scripted scenario (`cairn.sim.scenarios`): the nemesis hands it the
same hooks (plus "a leader persisted a new commit index") and its own tools — `count`,
`later`, `crash` — and the script acts alongside the random schedule. Every fault is
counted by kind.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from cairn.raft.types import ConfChange, ConfChangeSingle, ConfChangeType, NodeId
from cairn.shard.replica import Completion, Outcome
from cairn.sim.cluster import Cluster, NodeState, SimNode
from cairn.sim.loop import HARNESS
from cairn.sim.network import bridge, cut_between, halves, isolate, majority_ring
from cairn.sim.scenarios import SCRIPTS, Scenario, Script

MS = 1_000_000


class Fault(enum.Enum):
    """A kind of fault a run may inject."""

    DROP = "drop"
    DUPLICATE = "duplicate"
    DELAY = "delay"
    REORDER = "reorder"
    PARTITION = "partition"
    CRASH = "crash"
    PAUSE = "pause"
    MEMBERSHIP = "membership"
    TRANSFER = "transfer"
    CLOCK_SKEW = "clock-skew"


ALL_FAULTS = frozenset(Fault)
SCHEDULED = (Fault.PARTITION, Fault.CRASH, Fault.PAUSE, Fault.MEMBERSHIP, Fault.TRANSFER)


@dataclass(frozen=True, slots=True)
class NemesisParams:
    """Timing of the scheduled faults, in virtual nanoseconds."""

    min_interval: int = 20 * MS
    max_interval: int = 200 * MS
    max_partition: int = 800 * MS
    max_down: int = 400 * MS
    max_pause: int = 500 * MS
    vote_crash: float = 0.15
    election_crash: float = 0.2
    max_election_crash_delay: int = 15 * MS
    min_quick_restart: int = 1 * MS
    max_quick_restart: int = 10 * MS
    """A crash right after a vote is followed by a quick restart (a supervisor's), after
    `min_quick_restart` to `max_quick_restart`, so the node is back while the election it
    voted in is still being decided."""
    max_nodes_extra: int = 2


class Nemesis:
    """Schedules and undoes faults; `counts` maps a fault name to how often it struck."""

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        faults: frozenset[Fault],
        params: NemesisParams,
        new_node: Callable[[NodeId], SimNode],
        scenario: Scenario = Scenario.NONE,
    ) -> None:
        self.cluster = cluster
        self.loop = cluster.loop
        self.rng = rng
        self.faults = faults
        self.params = params
        self.new_node = new_node
        self.counts: dict[str, int] = {}
        self.active = False
        self._kinds = [f for f in SCHEDULED if f in faults]
        self._next_id = max(cluster.nodes) + 1
        self._max_id = max(cluster.nodes) + params.max_nodes_extra
        self._membership_busy_until = 0
        self.script: Script | None = None
        if scenario is not Scenario.NONE:
            self.script = SCRIPTS[scenario](self, random.Random(rng.getrandbits(64)))

    def count(self, name: str) -> None:
        """Count one fault of kind `name` (and put it in the trace)."""
        self.counts[name] = self.counts.get(name, 0) + 1
        self.loop.record(f"nemesis {name}")

    def later(self, delay: int, label: str, action: Callable[[], None]) -> None:
        """Run `action` after `delay` virtual nanoseconds, as the harness."""
        self.loop.call_later(delay, HARNESS, label, action)

    def start(self) -> None:
        """Begin the fault schedule (and the scenario's script, if any)."""
        self.active = bool(self._kinds) or self.script is not None
        self._schedule()
        if self.script is not None:
            self.script.start()

    def stop(self) -> None:
        """End the schedule; pending undo actions (heal, restart, resume) still run."""
        self.active = False

    def _schedule(self) -> None:
        if not self.active or not self._kinds:
            return
        delay = self.rng.randint(self.params.min_interval, self.params.max_interval)
        self.later(delay, "nemesis tick", self._tick)

    def _tick(self) -> None:
        if not self.active:
            return
        kind = self.rng.choice(self._kinds)
        {
            Fault.PARTITION: self._partition,
            Fault.CRASH: self._crash,
            Fault.PAUSE: self._pause,
            Fault.MEMBERSHIP: self._membership,
            Fault.TRANSFER: self._transfer,
        }[kind]()
        self._schedule()

    # -- partitions -------------------------------------------------------------------

    def _partition(self) -> None:
        if self.cluster.network.cut:
            return  # let the current partition run its course, so elections happen inside it
        nodes = self.cluster.ids(None)
        shape = self.rng.choice(["halves", "isolate-leader", "majority-ring", "bridge"])
        leader = self.cluster.leader()
        if shape == "halves":
            cut = cut_between(halves(nodes, self.rng))
        elif shape == "isolate-leader":
            victim = leader.node_id if leader is not None else self.rng.choice(nodes)
            cut = isolate(victim, nodes)
        elif shape == "majority-ring":
            cut = majority_ring(nodes, self.rng)
        else:
            cut = bridge(nodes, self.rng)
        self.cluster.network.set_partition(cut)
        self.count(Fault.PARTITION.value)
        self.count(f"partition:{shape}")
        duration = self.rng.randint(50 * MS, self.params.max_partition)
        self.later(duration, "nemesis heal", lambda: self._heal(cut))

    def _heal(self, cut: frozenset[tuple[NodeId, NodeId]]) -> None:
        if self.cluster.network.cut == cut:
            self.cluster.network.heal()
            self.loop.record("nemesis healed")

    # -- crashes and pauses -----------------------------------------------------------

    def _crash(self) -> None:
        up = self.cluster.ids()
        if up:
            self._crash_node(self.rng.choice(up))

    def _crash_node(self, node_id: NodeId) -> None:
        """Crash `node_id` if it is up, for a random while."""
        if self.cluster.nodes[node_id].state is NodeState.UP:
            self.crash(node_id, self.rng.randint(1 * MS, self.params.max_down))

    def crash(self, node_id: NodeId, down_for: int | None) -> None:
        """Crash `node_id` if it is up; restart it after `down_for` (None: stays down)."""
        if self.cluster.nodes[node_id].state is not NodeState.UP:
            return
        self.cluster.crash(node_id)
        self.count(Fault.CRASH.value)
        if down_for is not None:
            self.later(down_for, f"nemesis restart n{node_id}", lambda: self._restart(node_id))

    def _restart(self, node_id: NodeId) -> None:
        if self.cluster.nodes[node_id].state is NodeState.DOWN:
            self.cluster.start(node_id)
            self.count("restart")

    def after_vote(self, node_id: NodeId) -> None:
        """A node just granted a vote: sometimes crash it before it syncs anything else."""
        if self.active and self.script is not None:
            self.script.after_vote(node_id)
        if not self.active or Fault.CRASH not in self.faults:
            return
        if self.rng.random() >= self.params.vote_crash:
            return
        self.count("crash:after-vote")
        down_for = self.rng.randint(self.params.min_quick_restart, self.params.max_quick_restart)
        self.later(
            self.rng.randint(0, 1 * MS),
            "nemesis crash-after-vote",
            lambda: self.crash(node_id, down_for),
        )

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        """A leader just persisted a new commit index (only scripts care)."""
        if self.active and self.script is not None:
            self.script.after_commit(node_id, commit)

    def after_election(self, node_id: NodeId) -> None:
        """A node just became leader: sometimes crash it while its first entries are only
        partly replicated (the Figure 8 scenario of the Raft paper)."""
        if self.active and self.script is not None:
            self.script.after_election(node_id)
        if not self.active or Fault.CRASH not in self.faults:
            return
        if self.rng.random() >= self.params.election_crash:
            return
        self.count("crash:after-election")
        delay = self.rng.randint(0, self.params.max_election_crash_delay)
        self.later(delay, "nemesis crash-after-election", lambda: self._crash_node(node_id))

    def _pause(self) -> None:
        up = [n for n in self.cluster.ids() if not self.loop.is_paused(n)]
        if not up:
            return
        leader = self.cluster.leader()
        if leader is not None and self.rng.random() < 0.5:
            victim = leader.node_id
        else:
            victim = self.rng.choice(up)
        self.loop.pause(victim)
        self.count(Fault.PAUSE.value)
        duration = self.rng.randint(10 * MS, self.params.max_pause)
        self.later(duration, f"nemesis resume n{victim}", lambda: self.loop.resume(victim))

    # -- membership and leadership ----------------------------------------------------

    def _membership(self) -> None:
        leader = self.cluster.leader()
        if leader is None or self.loop.now < self._membership_busy_until:
            return
        cs = leader.conf_state
        if cs.voters_outgoing:
            return
        if cs.learners:
            change = ConfChangeSingle(ConfChangeType.ADD_NODE, self.rng.choice(cs.learners))
            name = "membership:promote"
        elif len(cs.voters) > 3 and (self.rng.random() < 0.5 or self._next_id > self._max_id):
            change = ConfChangeSingle(ConfChangeType.REMOVE_NODE, self.rng.choice(cs.voters))
            name = "membership:remove"
        elif self._next_id <= self._max_id:
            node_id = self._next_id
            self._next_id += 1
            self.cluster.add_node(self.new_node(node_id))
            self.cluster.start(node_id)
            change = ConfChangeSingle(ConfChangeType.ADD_LEARNER, node_id)
            name = "membership:add-learner"
        else:
            return
        self._membership_busy_until = self.loop.now + 1000 * MS
        self.count(Fault.MEMBERSHIP.value)
        self.count(name)
        leader.propose_conf_change(
            ConfChange(changes=(change,)), lambda done: self._membership_done(change, done)
        )

    def _membership_done(self, change: ConfChangeSingle, done: Completion) -> None:
        self._membership_busy_until = 0
        if done.outcome is Outcome.OK and change.type is ConfChangeType.REMOVE_NODE:
            victim = change.node_id
            self.later(200 * MS, f"nemesis retire n{victim}", lambda: self._retire(victim))

    def _retire(self, node_id: NodeId) -> None:
        node = self.cluster.nodes[node_id]
        if node.state is not NodeState.REMOVED:
            self.cluster.crash(node_id, final=True)
            self.count("membership:retired")

    def _transfer(self) -> None:
        leader = self.cluster.leader()
        if leader is None:
            return
        others = [v for v in leader.conf_state.voters if v != leader.node_id]
        if not others:
            return
        leader.transfer_leader(self.rng.choice(others))
        self.count(Fault.TRANSFER.value)

    # -- the end ----------------------------------------------------------------------

    def heal_all(self) -> None:
        """Undo every fault: heal, resume, restart every node that is down."""
        self.stop()
        self.cluster.network.heal()
        for node_id in self.cluster.ids(None):
            self.loop.resume(node_id)
            if self.cluster.nodes[node_id].state is NodeState.DOWN:
                self.cluster.start(node_id)
