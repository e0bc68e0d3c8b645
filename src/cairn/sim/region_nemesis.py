"""The nemesis of a multi-region run: partitions, crashes and restarts, node loss.

Theory of operation. Every `min_interval` to `max_interval` of virtual time it picks one
fault: a partition (random halves, one node isolated, or two halves joined by a bridge
node; healed after a while, one at a time), a crash followed by a restart, a pause, or —
at most `losses` times per run, and never while another node is down — the loss of a node
for good, followed after `replace_after` by a brand-new node joining (the placement driver
must move every replica off the lost node onto the others). Network faults (drop,
duplicate, delay, reorder) and clock skew are properties of the run, set up by the runner.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from cairn.raft.types import NodeId
from cairn.sim.loop import HARNESS
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import bridge, cut_between, halves, isolate

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


class RegionNemesis:
    """Schedules and undoes faults; `counts` maps a fault name to how often it struck."""

    def __init__(
        self,
        cluster: MultiCluster,
        rng: random.Random,
        params: RegionNemesisParams,
        kinds: tuple[str, ...],
        add_node: Callable[[], None],
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

    def count(self, name: str) -> None:
        """Count one fault (and put it in the trace)."""
        self.counts[name] = self.counts.get(name, 0) + 1
        self.loop.record(f"nemesis {name}")

    def later(self, delay: int, label: str, action: Callable[[], None]) -> None:
        """Run `action` after `delay`, as the harness."""
        self.loop.call_later(delay, HARNESS, label, action)

    def start(self) -> None:
        """Begin the schedule."""
        self.active = bool(self.kinds)
        self._schedule()

    def _schedule(self) -> None:
        if self.active:
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
        }[kind]()
        self._schedule()

    def _partition(self) -> None:
        network = self.cluster.network
        nodes = self.cluster.live()
        if network.cut or len(nodes) < 2:
            return
        shape = self.rng.choice(["halves", "isolate", "bridge"])
        if shape == "halves":
            cut = cut_between(halves(nodes, self.rng))
        elif shape == "isolate":
            cut = isolate(self.rng.choice(nodes), nodes)
        else:
            cut = bridge(nodes, self.rng)
        network.set_partition(cut)
        self.count(f"partition:{shape}")
        duration = self.rng.randint(50 * MS, self.params.max_partition)
        self.later(duration, "nemesis heal", lambda: self._heal(cut))

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
