"""`RegionRun`: the live parts of one multi-region run, built from its config and seed,
and the checks made after every event.

Theory of operation. One `random.Random(seed)` is the root; each component draws its own
child stream (`child_rng`) in a fixed order: the hosts' Raft settings, the network and
its fault rates, the nodes, the placement driver, the placement group's crash, the
nemesis, the clients, buggify last (so switching it on shifts no other stream), then a
transaction workload's own streams. Changing that order changes every seed's run.

Checked after every event (`step`): the applied layout tiles the keyspace
(`cairn.sim.coverage`) whenever it changed, and every few events every region's Raft
safety and the placement group's (one `InvariantChecker` per group, fed through the
observers) and that no replica's driver failed. A broken property raises
`InvariantViolationError`, which stops the run.
"""

from __future__ import annotations

import random
from dataclasses import replace

from cairn.check.history import Op
from cairn.placement import PlacementConfig, PlacementRules
from cairn.placement.agent import AgentSettings
from cairn.placement.tso import TSO_BACKWARDS, TsoSettings
from cairn.raft.config import Config
from cairn.raft.types import NodeId, ReadOnlyOption
from cairn.shard.host import HostConfig
from cairn.shard.replica import ReplicaConfig, ReplicaObserver
from cairn.sim.coverage import coverage_problem
from cairn.sim.env import Buggify
from cairn.sim.invariants import (
    InvariantChecker,
    InvariantKind,
    InvariantViolationError,
    Violation,
)
from cairn.sim.loop import EventLoop
from cairn.sim.observer import SimObserver
from cairn.sim.region_client import HistoryCounts
from cairn.sim.region_config import RegionSimConfig, drawn, first_free_id
from cairn.sim.region_faults import network_faults, new_nemesis
from cairn.sim.region_pd import (
    PLACEMENT_MEMBERS,
    PlacementCluster,
    PlacementNetwork,
    PlacementSetup,
    SimPlacement,
)
from cairn.sim.region_workload import attach_transactions, new_clients, new_txn
from cairn.sim.store_range import SimStoreMachine
from cairn.sim.txn_client import READS_IGNORE_LOCKS

__all__ = ["PLACEMENT_GROUP", "SIM_PLACEMENT", "TICK", "RegionRun"]

TICK = 0.01
"""The replicas' tick interval (virtual seconds)."""
PLACEMENT_GROUP = 0
"""The checker key of the placement group (region ids start at 1)."""

SIM_PLACEMENT = PlacementConfig(
    down_after_ms=1200,
    disconnected_after_ms=600,
    max_operators=16,
    max_node_operators=4,
    max_node_snapshots=2,
    operator_timeout_ms=3000,
    snapshot_operator_timeout_ms=6000,
    split_size_bytes=120,
    split_write_bytes_per_s=1 << 30,
    merge_size_bytes=60,
    merge_keys=1 << 30,
    split_merge_interval_ms=300,
)
"""Thresholds scaled to a few dozen bytes and seconds, so everything happens in a short run."""


class _NodeHooks:
    """The fault hooks of one group's replica on one node: the observer names the
    replica's peer id, the nemesis strikes the node, which is built after the cluster."""

    def __init__(self, run: RegionRun, node: NodeId, region_id: int) -> None:
        self._run = run
        self._node = node
        self._region = region_id

    def after_vote(self, node_id: NodeId) -> None:
        """The replica just granted a vote."""
        self._run.nemesis.after_vote(self._node)

    def after_election(self, node_id: NodeId) -> None:
        """The replica just became its group's leader."""
        self._run.nemesis.after_election(self._node, self._region)

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        """The replica, leading its group, persisted a commit index."""
        self._run.nemesis.after_commit(self._node, self._region, commit)


class RegionRun:
    """The live parts of one run (module docstring)."""

    def __init__(self, config: RegionSimConfig) -> None:
        self.config = config
        self.root = random.Random(config.seed)
        self.loop = EventLoop(trace=[] if config.keep_trace else None)
        self.checkers: dict[int, InvariantChecker] = {}
        self.history: list[Op] = []
        self.counts = HistoryCounts()
        self.violation: Violation | None = None
        self.converging = False
        """Past the faults (`cairn.sim.region_checks.converge`)."""
        self._coverage_seen = -1
        host_config = self._host_config(self.child_rng())
        self.read_mode = host_config.replica.raft.read_only_option
        # Built last (below), so switching it on shifts no other random stream.
        self.buggify = Buggify(random.Random(0), enabled=False)
        network_rng = self.child_rng()
        faults = network_faults(config.faults, self.child_rng())
        network = PlacementNetwork(self.loop, network_rng, faults, self._buggify)
        self.cluster = PlacementCluster(
            self.loop,
            network,
            host_config,
            self._observer,
            keep_history=False,
            buggify=self._buggify,
            new_machine=self._machine,
        )
        self._nodes_rng = self.child_rng()
        self.placement = SimPlacement(
            self.cluster,
            PlacementSetup(
                members=tuple(range(1, min(PLACEMENT_MEMBERS, config.nodes) + 1)),
                replica=host_config.replica,
                config=SIM_PLACEMENT,
                rules=PlacementRules(replicas=config.replicas),
                first_id=first_free_id(config),
                # Regions of a few dozen bytes: every change of size matters.
                agent=AgentSettings(change_slack=(0, 0, 0), report_refresh=5.0),
                tso=TsoSettings(plants=frozenset(config.txn_plants & {TSO_BACKWARDS})),
            ),
            self.child_rng(),
            observer=lambda node: self._observer(node, PLACEMENT_GROUP),
        )
        self.cluster.placement = self.placement
        self.pd_rng = self.child_rng()
        """The placement group's crash (`cairn.sim.region_faults.schedule_placement_fault`)."""
        for _ in range(config.nodes):
            self._new_node(start=False)
        self.nemesis = new_nemesis(
            config, self.cluster, self.child_rng(), lambda: self._new_node(start=True)
        )
        self.keys = tuple(f"key{i}" for i in range(config.keys))
        self.txn = new_txn(self)
        self.params, self.clients = new_clients(self)
        self.buggify = Buggify(self.child_rng(), config.buggify)
        if self.txn is not None:  # drawn last: the streams above stay what they were
            attach_transactions(self)

    def child_rng(self) -> random.Random:
        """The next child stream of the root (the order of the calls is the seed's)."""
        return random.Random(self.root.getrandbits(64))

    def _machine(self) -> SimStoreMachine:
        return SimStoreMachine(READS_IGNORE_LOCKS in self.config.txn_plants)

    def _buggify(self, site: str) -> bool:
        return self.buggify(site)

    def _host_config(self, rng: random.Random) -> HostConfig:
        drawn_mode = ReadOnlyOption.LEASE_BASED if rng.random() < 0.5 else ReadOnlyOption.SAFE
        read_mode = self.config.read_mode or drawn_mode
        raft = Config(
            id=1,
            election_tick=10,
            heartbeat_tick=2,
            check_quorum=True,
            pre_vote=drawn(self.config.pre_vote, rng.random() < 0.75),
            read_only_option=read_mode,
            max_size_per_msg=drawn(self.config.max_size_per_msg, rng.choice([64, 1 << 20])),
            bugs=self.config.planted,
        )
        if self.config.max_inflight_msgs is not None:
            raft = replace(raft, max_inflight_msgs=self.config.max_inflight_msgs)
        replica = ReplicaConfig(raft, tick_interval=TICK, snapshot_threshold=rng.choice([20, 200]))
        # One seed in three fsyncs small writes inline (as a real node does when idle),
        # every other seed keeps one Ready per replica in flight (a real node's
        # `pipeline_depth`), the others four; taken from the seed, not drawn, so each
        # seed keeps its schedule.
        seed = self.config.seed
        return HostConfig(
            replica,
            hibernate=drawn(self.config.hibernate, rng.random() < 0.5),
            inline_sync_entries=8 if seed % 3 == 0 else 0,
            pipeline_depth=1 if seed % 2 else 4,
        )

    def _observer(self, node: NodeId, region_id: int) -> ReplicaObserver:
        checker = self.checkers.get(region_id)
        if checker is None:
            checker = self.checkers[region_id] = InvariantChecker(
                lambda: (self.loop.steps, self.loop.now)
            )
        return SimObserver(checker, _NodeHooks(self, node, region_id))

    def _new_node(self, start: bool) -> None:
        node_id = max(self.cluster.nodes, default=0) + 1
        rng = random.Random(self._nodes_rng.getrandbits(64))
        node = self.cluster.add_node(node_id, rng, background_sync=self.config.background_sync)
        skew = self.config.clock_skew
        rate = 1.0 + rng.uniform(-skew, skew)
        node.clock_rate = rate if "clock-skew" in self.config.faults else 1.0
        if start:
            self.cluster.start(node_id)

    # -- checking ----------------------------------------------------------------------

    def step(self) -> bool:
        """Run one event and check it."""
        ran = self.loop.run_one()
        self.check()
        return ran

    def check(self) -> None:
        """Stop the run (raise) if anything broke in the last events: coverage after every
        event that changed the layout, Raft's invariants and drivers every few events (a
        violation stops the replica that saw it, so it is still there to be found)."""
        if self.cluster.changes != self._coverage_seen:
            self._coverage_seen = self.cluster.changes
            problem = coverage_problem(self.cluster.applied.values())
            if problem is not None:
                self._fail(InvariantKind.STATE_MACHINE_SAFETY, f"coverage: {problem}")
        if self.loop.steps % 16 == 0:
            self.check_replicas()

    def check_replicas(self) -> None:
        """Raise the first violation a region's checker saw, or a failed driver."""
        for region_id in sorted(self.checkers):
            violation = self.checkers[region_id].violation
            if violation is not None:
                raise InvariantViolationError(violation)
        for node_id in self.cluster.live():
            host = self.cluster.host(node_id)
            assert host is not None
            for region_id in sorted(host.peers):
                failure = host.peers[region_id].replica.failure
                if failure is not None:
                    self._fail(InvariantKind.NODE_FAILED, f"n{node_id} r{region_id}: {failure!r}")
        for node_id, failure in self.placement.failures():
            self._fail(InvariantKind.NODE_FAILED, f"n{node_id} placement: {failure!r}")

    def _fail(self, kind: InvariantKind, text: str) -> None:
        """Stop the run with a violation of `kind` described by `text`."""
        raise InvariantViolationError(Violation(kind, self.loop.steps, self.loop.now, text))
