"""The nemesis of a multi-region run: partitions, crashes and restarts, node loss.

Theory of operation. Every `min_interval` to `max_interval` of virtual time it picks one
fault: a partition (random halves, one node isolated, two halves joined by a bridge node,
or one-way: a node that only hears or only speaks, or a majorities ring; healed after a
while, one at a time),
a crash followed by a restart, a pause, a leadership transfer in a random region, a power
loss (every live node crashes at once, each losing what it had not synced, and all
restart together), or — at most `losses` times per run, and never while another node is
down — the loss of a node for good, followed after `replace_after` by a brand-new node
joining (the placement driver must move every replica off the lost node onto the others).

Crashes also strike at the interesting times, through the invariant observers' hooks:
right after a node grants a vote in any region (with a quick restart, so a forgotten vote
can be cast again in the same election), and right after a node becomes a region's
leader (the Raft paper's Figure 8). Network faults (drop, duplicate, delay, reorder) and
clock skew are properties of the run, set up by the runner.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from cairn.raft.types import NodeId
from cairn.sim.loop import HARNESS
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import bridge, cut_between, halves, isolate, majority_ring, one_way
from cairn.sim.region_scenarios import RegionFigure8

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class RegionNemesisParams:
    """Timing and limits of the faults, in virtual nanoseconds."""

    min_interval: int = 30 * MS
    max_interval: int = 250 * MS
    max_partition: int = 600 * MS
    max_down: int = 400 * MS
    max_pause: int = 300 * MS
    losses: int = 1
    replace_after: int = 100 * MS
    vote_crash: float = 0.0
    """The chance a node is crashed right after it grants a vote (runs with crashes;
    `HOOKED` strikes there)."""
    election_crash: float = 0.0
    """The chance a node is crashed soon after it wins a region's election."""
    max_election_crash_delay: int = 15 * MS
    min_quick_restart: int = 1 * MS
    max_quick_restart: int = 10 * MS
    max_power_down: int = 200 * MS
    shapes: tuple[str, ...] = ("halves", "isolate", "bridge")
    """The partition shapes drawn from (`HOOKED` adds one-way and the majorities ring:
    every node sees a majority, no two neighbours the same one)."""
    isolate_leaders: bool = False
    """An isolated node is one that leads regions, when there is one."""


HOOKED = RegionNemesisParams(
    vote_crash=0.05,
    election_crash=0.1,
    shapes=("halves", "isolate", "bridge", "one-way", "majority-ring"),
    isolate_leaders=True,
)
"""The nemesis of `cairn sim --regions`: crashes at the hooked moments too, one-way
partitions, leaders isolated."""


class RegionNemesis:
    """Schedules and undoes faults; `counts` maps a fault name to how often it struck."""

    def __init__(
        self,
        cluster: MultiCluster,
        rng: random.Random,
        params: RegionNemesisParams,
        kinds: tuple[str, ...],
        add_node: Callable[[], None],
        scenario: str = "",
    ) -> None:
        self.cluster = cluster
        self.loop = cluster.loop
        self.rng = rng
        self.params = params
        self.kinds = kinds
        self.add_node = add_node
        self.counts: dict[str, int] = {}
        self.active = False
        self._losses = 0
        self.script: RegionFigure8 | None = None
        if scenario == "figure-8":
            self.script = RegionFigure8(self, random.Random(rng.getrandbits(64)))

    def count(self, name: str) -> None:
        """Count one fault (and put it in the trace)."""
        self.counts[name] = self.counts.get(name, 0) + 1
        self.loop.record(f"nemesis {name}")

    def later(self, delay: int, label: str, action: Callable[[], None]) -> None:
        """Run `action` after `delay`, as the harness."""
        self.loop.call_later(delay, HARNESS, label, action)

    def start(self) -> None:
        """Begin the schedule."""
        self.active = bool(self.kinds) or self.script is not None
        self._schedule()
        if self.script is not None:
            self.script.start()

    def _schedule(self) -> None:
        if self.active and self.kinds:
            delay = self.rng.randint(self.params.min_interval, self.params.max_interval)
            self.later(delay, "nemesis tick", self._tick)

    def _tick(self) -> None:
        if not self.active:
            return
        kind = self.rng.choice(self.kinds)
        {
            "partition": self._partition,
            "crash": self._crash,
            "pause": self._pause,
            "lose": self._lose,
            "transfer": self._transfer,
            "power-loss": self._power_loss,
        }[kind]()
        self._schedule()

    def _partition(self) -> None:
        network = self.cluster.network
        nodes = self.cluster.live()
        if network.cut or len(nodes) < 2:
            return
        shape = self.rng.choice(self.params.shapes)
        if shape == "halves":
            cut = cut_between(halves(nodes, self.rng))
        elif shape == "isolate":
            # Cut off a node that leads regions, when there is one: its clients keep
            # talking to it while the others elect new leaders.
            leading = [n for n in nodes if self._leads(n)] if self.params.isolate_leaders else []
            cut = isolate(self.rng.choice(leading or nodes), nodes)
        elif shape == "one-way":
            cut = one_way(nodes, self.rng)
        elif shape == "majority-ring":
            cut = majority_ring(nodes, self.rng)
        else:
            cut = bridge(nodes, self.rng)
        network.set_partition(cut)
        self.count(f"partition:{shape}")
        duration = self.rng.randint(50 * MS, self.params.max_partition)
        self.later(duration, "nemesis heal", lambda: self._heal(cut))

    def _leads(self, node_id: NodeId) -> bool:
        host = self.cluster.host(node_id)
        return host is not None and any(p.replica.is_leader for p in host.peers.values())

    def _heal(self, cut: frozenset[tuple[NodeId, NodeId]]) -> None:
        if self.cluster.network.cut == cut:
            self.cluster.network.heal()

    def _crash(self) -> None:
        up = self.cluster.live()
        if not up:
            return
        victim = self.rng.choice(up)
        self.cluster.crash(victim)
        self.count("crash")
        self.later(
            self.rng.randint(1 * MS, self.params.max_down),
            f"nemesis restart n{victim}",
            lambda: self._restart(victim),
        )

    def crash(self, node_id: NodeId, down_for: int | None) -> None:
        """Crash `node_id` if it is up; restart it after `down_for` (None: stays down
        until a script or the end restarts it)."""
        node = self.cluster.nodes[node_id]
        if not node.up:
            return
        self.cluster.crash(node_id)
        self.count("crash")
        if down_for is not None:
            self.later(down_for, f"nemesis restart n{node_id}", lambda: self._restart(node_id))

    def after_vote(self, node_id: NodeId) -> None:
        """`node_id` just granted a vote in some region: sometimes crash it before it
        syncs anything else, and restart it quickly."""
        if not self.active or "crash" not in self.kinds or not self.params.vote_crash:
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

    def after_election(self, node_id: NodeId, region_id: int = 0) -> None:
        """`node_id` just became region `region_id`'s leader: sometimes crash it while its
        first entries are only partly replicated."""
        if self.active and self.script is not None:
            self.script.after_election(node_id, region_id)
        if not self.active or "crash" not in self.kinds or not self.params.election_crash:
            return
        if self.rng.random() >= self.params.election_crash:
            return
        self.count("crash:after-election")
        delay = self.rng.randint(0, self.params.max_election_crash_delay)
        down_for = self.rng.randint(1 * MS, self.params.max_down)
        self.later(delay, "nemesis crash-after-election", lambda: self.crash(node_id, down_for))

    def after_commit(self, node_id: NodeId, region_id: int, commit: int) -> None:
        """`node_id`, leading `region_id`, persisted a commit index (only scripts care)."""
        if self.active and self.script is not None:
            self.script.after_commit(node_id, region_id, commit)

    def _transfer(self) -> None:
        """Ask a random region's leader to hand leadership to another voter."""
        leaders = []
        for node_id in self.cluster.live():
            host = self.cluster.host(node_id)
            assert host is not None
            leaders += [(node_id, r) for r in sorted(host.peers) if host.peers[r].replica.is_leader]
        if not leaders:
            return
        node_id, region_id = self.rng.choice(leaders)
        host = self.cluster.host(node_id)
        assert host is not None
        peer = host.peers[region_id]
        others = [p.id for p in peer.region.voters() if p.id != peer.peer_id]
        if not others:
            return
        host.transfer_leader(region_id, self.rng.choice(others))
        self.count("transfer")

    def _power_loss(self) -> None:
        """Every live node crashes at once (each loses its unsynced writes); all restart
        together a little later."""
        if any(not n.up and not n.lost for n in self.cluster.nodes.values()):
            return
        victims = self.cluster.live()
        for node_id in victims:
            self.cluster.crash(node_id)
        self.count("power-loss")
        down_for = self.rng.randint(1 * MS, self.params.max_power_down)

        def restart_all() -> None:
            for node_id in victims:
                self._restart(node_id)

        self.later(down_for, "nemesis power back", restart_all)

    def _restart(self, node_id: NodeId) -> None:
        node = self.cluster.nodes[node_id]
        if not node.up and not node.lost:
            self.cluster.start(node_id)
            self.count("restart")

    def _pause(self) -> None:
        up = [n for n in self.cluster.live() if not self.loop.is_paused(n)]
        if not up:
            return
        victim = self.rng.choice(up)
        self.loop.pause(victim)
        self.count("pause")
        duration = self.rng.randint(10 * MS, self.params.max_pause)
        self.later(duration, f"nemesis resume n{victim}", lambda: self.loop.resume(victim))

    def _lose(self) -> None:
        nodes = self.cluster.nodes
        if self._losses >= self.params.losses or any(
            not n.up and not n.lost for n in nodes.values()
        ):
            return
        self._losses += 1
        victim = self.rng.choice(self.cluster.live())
        self.cluster.lose(victim)
        self.count("lose")
        self.later(self.params.replace_after, "nemesis add node", self._add)

    def _add(self) -> None:
        self.add_node()
        self.count("add-node")

    def heal_all(self) -> None:
        """End the schedule and undo every fault but lost nodes."""
        self.active = False
        self.cluster.network.heal()
        for node_id in sorted(self.cluster.nodes):
            self.loop.resume(node_id)
            self._restart(node_id)
