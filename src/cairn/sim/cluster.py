"""A simulated cluster: nodes that crash, restart and pause, wired to the invariant checker.

Each `SimNode` owns a `SimDisk` for its whole life and a `Replica` per incarnation. The
`SimObserver` turns what replicas persist, commit and apply into calls on the
`InvariantChecker`, and tells the nemesis when a node has just granted a vote (the
moment a crash is most likely to expose a missing fsync).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cairn.raft.ready import Ready
from cairn.raft.types import ConfState, Entry, MessageType, NodeId, Snapshot, StateRole
from cairn.shard.replica import Replica, ReplicaConfig
from cairn.sim.disk import SimDisk
from cairn.sim.env import Buggify, SimClock, SimEnv, SimTransport
from cairn.sim.invariants import InvariantChecker
from cairn.sim.loop import EventLoop
from cairn.sim.network import SimNetwork
from cairn.sim.redis_machine import MachineKind, SimMachine, new_machine


class NodeState(enum.Enum):
    """Whether a node's process is running."""

    UP = "up"
    DOWN = "down"
    REMOVED = "removed"
    """Removed from the group and shut down for good."""


@dataclass(slots=True)
class SimNode:
    """One node across its incarnations."""

    node_id: NodeId
    disk: SimDisk
    rng: random.Random
    clock_rate: float
    bootstrap: ConfState | None
    state: NodeState = NodeState.DOWN
    incarnation: int = 0
    replica: Replica | None = None
    machine: SimMachine | None = None


class FaultHooks(Protocol):
    """Moments at which the nemesis may strike (it must only schedule, never act inline)."""

    def after_vote(self, node_id: NodeId) -> None:
        """`node_id` just granted a vote."""
        ...

    def after_election(self, node_id: NodeId) -> None:
        """`node_id` just became leader."""
        ...

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        """`node_id`, a leader, just persisted a commit index of `commit`."""
        ...


class SimObserver:
    """Feeds replica events to the invariant checker (a `ReplicaObserver`)."""

    def __init__(self, checker: InvariantChecker, hooks: FaultHooks) -> None:
        self.checker = checker
        self.hooks = hooks

    def on_persist(self, replica: Replica, ready: Ready) -> None:
        """See `ReplicaObserver.on_persist`."""
        node = replica.node_id
        if ready.soft_state is not None and ready.soft_state.role is StateRole.LEADER:
            log = replica.raw.log
            self.checker.leader_elected(
                node, replica.term, _log_term_at(replica), log.first_index()
            )
            self.hooks.after_election(node)
        if ready.entries:
            self.checker.entries_written(node, ready.entries, _storage_term_at(replica))
        if ready.hard_state is not None:
            hs = ready.hard_state
            self.checker.commit_advanced(node, hs.commit, hs.term, _storage_entry_at(replica))
            if replica.is_leader:
                self.hooks.after_commit(node, hs.commit)
        # A granted vote normally waits for the persist (`persisted_messages`); a core that
        # forgets to wait sends it at once (`messages`). Either way this is the moment.
        if any(
            m.type is MessageType.VOTE_RESP and not m.reject
            for m in (*ready.messages, *ready.persisted_messages)
        ):
            self.hooks.after_vote(node)

    def on_apply(self, replica: Replica, entry: Entry) -> None:
        """See `ReplicaObserver.on_apply`."""
        self.checker.applied(replica.node_id, entry, replica.term)

    def on_restore(self, replica: Replica, snapshot: Snapshot) -> None:
        """See `ReplicaObserver.on_restore`; snapshots are checked through their entries."""


def _log_term_at(replica: Replica) -> Callable[[int], int | None]:
    log = replica.raw.log

    def term_at(index: int) -> int | None:
        return log.term(index) or None

    return term_at


def _storage_term_at(replica: Replica) -> Callable[[int], int | None]:
    storage = replica.storage

    def term_at(index: int) -> int | None:
        if index < storage.first_index() - 1 or index > storage.last_index():
            return None
        return storage.term(index) if index >= 0 else None

    return term_at


def _storage_entry_at(replica: Replica) -> Callable[[int], Entry | None]:
    storage = replica.storage

    def entry_at(index: int) -> Entry | None:
        if index < storage.first_index() or index > storage.last_index():
            return None
        return storage.entries(index, index + 1)[0]

    return entry_at


class Cluster:
    """The nodes of one run, their network and the shared checker."""

    def __init__(
        self,
        loop: EventLoop,
        network: SimNetwork,
        checker: InvariantChecker,
        replica_config: ReplicaConfig,
        buggify: Buggify,
        hooks: FaultHooks,
        machine_kind: MachineKind = MachineKind.KV,
    ) -> None:
        self.machine_kind = machine_kind
        self.loop = loop
        self.network = network
        self.checker = checker
        self.replica_config = replica_config
        self.buggify = buggify
        self.observer = SimObserver(checker, hooks)
        self.nodes: dict[NodeId, SimNode] = {}

    def add_node(self, node: SimNode) -> None:
        """Register `node` (down until `start`)."""
        self.nodes[node.node_id] = node

    def ids(self, state: NodeState | None = NodeState.UP) -> list[NodeId]:
        """Node ids in a given state (all when None), sorted."""
        return sorted(n for n, node in self.nodes.items() if state is None or node.state is state)

    def start(self, node_id: NodeId) -> None:
        """Start a new incarnation of a node from what its disk holds."""
        node = self.nodes[node_id]
        node.incarnation += 1
        node.state = NodeState.UP
        incarnation = node.incarnation

        def alive() -> bool:
            return node.state is NodeState.UP and node.incarnation == incarnation

        clock = SimClock(self.loop, node_id, node.clock_rate, alive)
        env_rng = random.Random(node.rng.getrandbits(64))
        env = SimEnv(
            node_id, clock, SimTransport(self.network, node_id), node.disk, env_rng, self.buggify
        )
        node.machine = new_machine(self.machine_kind)
        node.replica = Replica(
            env, node.machine, self.replica_config, node.bootstrap, self.observer
        )
        self.loop.record(f"start n{node_id} incarnation {incarnation}")

    def crash(self, node_id: NodeId, final: bool = False) -> None:
        """Kill a node's process: unsynced writes may be lost, timers and sockets die."""
        node = self.nodes[node_id]
        if node.replica is not None:
            node.replica.stop()
        node.replica = None
        node.machine = None
        node.state = NodeState.REMOVED if final else NodeState.DOWN
        self.network.register(node_id, None)
        lost = node.disk.crash()
        self.loop.resume(node_id)
        self.loop.record(f"crash n{node_id} lost {lost}")

    def replica(self, node_id: NodeId) -> Replica | None:
        """The running replica of a node, if it is up."""
        node = self.nodes.get(node_id)
        return node.replica if node is not None and node.state is NodeState.UP else None

    def leader(self) -> Replica | None:
        """The live leader of the highest term, if any."""
        best: Replica | None = None
        for node_id in self.ids():
            replica = self.replica(node_id)
            if (
                replica is not None
                and replica.is_leader
                and (best is None or replica.term > best.term)
            ):
                best = replica
        return best
