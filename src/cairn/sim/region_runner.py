"""`run_region_simulation`: one seeded multi-region run with splits, merges, moves and node
loss, checked at every event and at the end.

Theory of operation. One `random.Random(seed)` is the root; each component draws its own
child stream in a fixed order. The cluster starts with `nodes` hosts and one region on the
first three; routed clients (`cairn.sim.region_client`) write and read a few keys spread
over the slots; the placement driver runs in its own Raft group on the first three nodes,
with an agent on every node heartbeating it and executing its steps
(`cairn.sim.region_pd`), all through the same network and clocks; its thresholds are
tiny, so regions split as they grow and merge as they shrink, replicas move, and lost
nodes are repaired; the nemesis (`cairn.sim.region_nemesis`) partitions, crashes, pauses
and loses nodes, on a network that drops, duplicates, delays and reorders, with clocks
that drift, and when crashes are on, the placement group's leader is crashed once too.

Checked after every event: every region's Raft safety and the placement group's (one
`InvariantChecker` per group, fed through the observers), no replica's driver failed, and
the applied layout tiles the keyspace (`cairn.sim.coverage`). After `steps` events the
faults stop (lost nodes stay lost), clients stop, and the cluster must converge within
`converge_within` of virtual time: every region with exactly the declared voters, no
learners, all on live nodes that hold it at its current epoch, and a leader, and the
placement group with a serving leader. Then every key is read once more through the
routed path, and the whole history (final reads included, so every acknowledged write
must have survived every split, merge and move) is checked for linearizability per key.
The result carries the trace digest: same seed, same digest.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cairn.check.history import Op
from cairn.check.linearizability import Verdict, check_history
from cairn.meta.region import Peer, PeerRole, Region, range_key, slot_bound
from cairn.placement import PlacementConfig, PlacementRules
from cairn.placement.agent import AgentSettings
from cairn.placement.tso import TSO_BACKWARDS, TsoSettings
from cairn.raft.config import Config, PlantedBug
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
from cairn.sim.loop import HARNESS, EventLoop
from cairn.sim.network import NetworkFaults
from cairn.sim.observer import SimObserver
from cairn.sim.region_client import ClientParams, HistoryCounts, RoutedClient
from cairn.sim.region_nemesis import HOOKED, RegionNemesis, RegionNemesisParams
from cairn.sim.region_pd import (
    PLACEMENT_MEMBERS,
    PlacementCluster,
    PlacementNetwork,
    PlacementSetup,
    SimPlacement,
)
from cairn.sim.region_scenarios import SCENARIOS
from cairn.sim.store_range import EPOCH_MS, SimStoreMachine
from cairn.sim.txn_client import (
    CRASH_STAGES,
    READS_IGNORE_LOCKS,
    TXN_PLANTS,
    TxnContext,
)
from cairn.sim.txn_run import new_context, settle, with_transactions
from cairn.sim.txn_workloads import AppendLogic
from cairn.sim.workloads import (
    ClientLogic,
    Workload,
    WorkloadVerdict,
    check_workload,
    final_read,
    new_logic,
)
from cairn.store.machine import StoreMachine
from cairn.store.slot import SLOT_COUNT

MS = 1_000_000
TICK = 0.01
PLACEMENT_GROUP = 0
"""The checker key of the placement group (region ids start at 1)."""
WORKLOAD_KEYS = {
    Workload.QUEUE: "q0",
    Workload.STREAM: "s0",
    Workload.APPEND: "la",
    Workload.BANK: "bank",
}
"""The one key a queue or stream run works on (append, bank: the prefix of their keys,
which lie in several regions)."""
TXN_WORKLOADS = (Workload.APPEND, Workload.BANK)
TXN_TIMEOUT_FACTOR = 2
"""A transaction client waits this many times `client_timeout`: a cross-region
transaction takes two timestamps and three rounds of proposals in several regions."""

PD_CRASH_AFTER = (300 * MS, 700 * MS)
"""When, after the start, the placement group's leader is crashed (runs with crashes)."""

REGION_FAULTS = (
    "drop",
    "duplicate",
    "delay",
    "reorder",
    "partition",
    "crash",
    "pause",
    "clock-skew",
    "transfer",
    "power-loss",
)
"""Every fault kind a multi-region run can inject, besides node loss (`losses`). The
names are `cairn sim --faults`'s; `power-loss` crashes every node at once."""
BASE_FAULTS = ("drop", "duplicate", "delay", "reorder", "partition", "crash", "pause", "clock-skew")
"""A `RegionSimConfig`'s default: the faults multi-region runs had before they took
`--faults` (the CI sweep's); `EVERY_FAULT` is what `cairn sim --regions` runs."""
SCHEDULED = ("partition", "crash", "pause", "transfer", "power-loss")
"""The kinds the nemesis schedules; the others are properties of the network and clocks."""

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


class RegionViolationKind:
    """Violation kinds of a multi-region run beyond Raft's (`Violation.kind` stays an
    `InvariantKind`; these are the descriptions' prefixes)."""

    COVERAGE = "coverage"
    CONVERGENCE = "convergence"


@dataclass(frozen=True, slots=True)
class RegionSimConfig:
    """One multi-region run's parameters; everything else is drawn from `seed`."""

    seed: int
    nodes: int = 4
    steps: int = 6000
    clients: int = 4
    keys: int = 10
    replicas: int = 3
    regions: int = 3
    """Regions founded at the start (cut at slot boundaries), before any split or merge."""
    faults: tuple[str, ...] = BASE_FAULTS
    planted: frozenset[PlantedBug] = frozenset()
    """Deliberate Raft bugs, switched on in every region's group and the placement group."""
    read_mode: ReadOnlyOption | None = None
    """ReadIndex (`SAFE`) or lease reads for every group (None: each seed draws one)."""
    buggify: bool = False
    pre_vote: bool | None = None
    """Force Raft's pre-vote on or off in every group (None: each seed draws it)."""
    max_size_per_msg: int | None = None
    """Force Raft's message size limit (None: each seed draws 64 bytes or 1 MiB)."""
    max_inflight_msgs: int | None = None
    """Force Raft's in-flight append limit (None: Raft's default)."""
    scenario: str = ""
    """A scripted fault sequence against region 1 (`cairn.sim.region_scenarios`)."""
    hibernate: bool | None = None
    """Force idle regions' hibernation on or off (None: each seed draws it)."""
    read_weight: float | None = None
    """The clients' share of reads (None: each seed draws one)."""
    client_timeout: int = 400 * MS
    """How long a client waits for a reply (ns) before recording the outcome unknown."""
    nemesis: RegionNemesisParams = RegionNemesisParams()  # noqa: RUF009 (frozen)
    """Timing of the scheduled and hooked faults (`losses` below overrides its own)."""
    losses: int = 1
    """Nodes lost for good (each replaced by a new node)."""
    clock_skew: float = 0.01
    converge_within: int = 20_000 * MS
    """Virtual time allowed, after the faults stop, to reach the declared placement."""
    check_linearizability: bool = True
    background_sync: bool = False
    """Nodes fsync in the background (`BackgroundSyncDisk`), as real nodes do."""
    keep_history: bool = False
    keep_trace: bool = False
    workload: Workload = Workload.REGISTER
    """What clients do: registers (checked for linearizability), or a queue, a stream,
    list-append or bank transactions (`cairn.sim.workloads`, checked against a final
    read of the applied state of the keys' region leaders)."""
    workload_key: str = ""
    """The workload's key or its keys' prefix ("": `WORKLOAD_KEYS`'); a hash tag such as
    "{bank}" keeps a transaction workload's keys in one region (1PC transactions)."""
    txn_plants: frozenset[str] = frozenset()
    """Planted bugs of cross-region transactions (`cairn.sim.txn_client.TXN_PLANTS`)."""
    coordinator_crashes: float = 0.05
    """The chance that a cross-region transaction's coordinator dies mid-way."""
    crash_stages: tuple[str, ...] = CRASH_STAGES
    """Where a dying coordinator dies (drawn among these: `CRASH_STAGES`)."""
    tso_wall_skew_ms: int = 0
    """Each placement member's wall clock is off by up to this much (the TSO's time)."""
    pd_crash_at: tuple[int, int] | None = None
    """Crash the placement group's leader once, at a time drawn in this window (ns), even
    without crash faults (None: once at `PD_CRASH_AFTER` when crashes are on)."""
    pd_crash_every: int = 0
    """With `pd_crash_at`: crash the placement group's leader again this often (ns; 0:
    once), until the faults stop."""

    def __post_init__(self) -> None:
        if self.nodes < self.replicas or self.replicas < 1:
            raise ValueError(f"need nodes >= replicas >= 1, not {self.nodes} and {self.replicas}")
        if self.scenario not in ("", *SCENARIOS):
            raise ValueError(f"unknown scenario {self.scenario!r}")
        unknown = set(self.faults) - set(REGION_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        if not self.crash_stages or not set(self.crash_stages) <= set(CRASH_STAGES):
            raise ValueError(f"crash stages must be among {CRASH_STAGES}")
        if not self.txn_plants <= set(TXN_PLANTS):
            raise ValueError(f"unknown plants {sorted(self.txn_plants - set(TXN_PLANTS))}")


EVERY_FAULT = RegionSimConfig(seed=0, faults=REGION_FAULTS, buggify=True, nemesis=HOOKED)
"""What `cairn sim --regions` runs by default: every fault kind, crashes at the hooked
moments, one-way partitions, and buggify on."""


@dataclass(frozen=True, slots=True)
class RegionSimResult:
    """What one multi-region run did and whether it stayed safe and converged."""

    seed: int
    steps: int
    virtual_time: int
    ops_ok: int
    ops_failed: int
    ops_unknown: int
    stale_refusals: int
    regions: int
    splits: int
    merges: int
    moves: int
    faults: dict[str, int]
    converged_after: int | None
    """Virtual ns from the end of the faults to convergence (None: it did not converge)."""
    violation: Violation | None
    verdict: Verdict | None
    digest: str
    history: tuple[Op, ...] = ()
    trace: tuple[str, ...] = ()
    placement: dict[str, int] = field(default_factory=dict)
    """What the agents did: requests sent, served, refused, timed out; stale peers
    destroyed; merge commits proposed."""
    read_mode: ReadOnlyOption = ReadOnlyOption.SAFE
    buggified: tuple[str, ...] = ()
    """The buggify sites that were switched on in this run."""
    buggify_fired: dict[str, int] = field(default_factory=dict)
    """How often each buggify site took its odd path."""
    workload: Workload = Workload.REGISTER
    workload_verdict: WorkloadVerdict | None = None
    """A workload run's check (None: a register run, or a violation stopped it)."""
    transactions: dict[str, int] = field(default_factory=dict)
    """What a transaction workload's transactions did (`TxnStats`: cross-region and
    single-region ones, coordinator crashes, locks met and resolved)."""

    @property
    def failure(self) -> str | None:
        """The first broken property in words, or None when the run was safe and converged."""
        if self.violation is not None:
            return str(self.violation)
        if self.verdict is not None and not self.verdict.ok:
            return f"linearizability (key {self.verdict.key!r}): {self.verdict.explanation}"
        if self.workload_verdict is not None and self.workload_verdict.failure is not None:
            return f"{self.workload.value} check: {self.workload_verdict.failure}"
        return None

    @property
    def linearizable(self) -> bool | None:
        """The checker's answer: True, False, or None when it was not run or gave up."""
        if self.verdict is None or self.verdict.unknown:
            return None
        return self.verdict.ok

    @property
    def ok(self) -> bool:
        """Safe, linearizable (or not checked) and converged."""
        return self.failure is None


class _NodeHooks:
    """The fault hooks of one group's replica on one node: the observer names the
    replica's peer id, the nemesis strikes the node, which is built after the cluster."""

    def __init__(self, run: _Run, node: NodeId, region_id: int) -> None:
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


def _child(root: random.Random) -> random.Random:
    return random.Random(root.getrandbits(64))


T = TypeVar("T")


def _drawn(forced: T | None, drawn: T) -> T:
    """`forced` unless it is None (the draw happens either way, so forcing one knob does
    not shift the choices drawn after it)."""
    return drawn if forced is None else forced


class _Run:
    """The live parts of one run."""

    def __init__(self, config: RegionSimConfig) -> None:
        self.config = config
        self.root = random.Random(config.seed)
        self.loop = EventLoop(trace=[] if config.keep_trace else None)
        self.checkers: dict[int, InvariantChecker] = {}
        self.history: list[Op] = []
        self.counts = HistoryCounts()
        self.violation: Violation | None = None
        self.converging = False
        """Past the faults (`_converge`)."""
        self._coverage_seen = -1
        host_config = self._host_config(_child(self.root))
        self.read_mode = host_config.replica.raft.read_only_option
        # Built last (below), so switching it on shifts no other random stream.
        self.buggify = Buggify(random.Random(0), enabled=False)
        network = PlacementNetwork(
            self.loop, _child(self.root), self._faults(_child(self.root)), self._buggify
        )
        self.cluster = PlacementCluster(
            self.loop,
            network,
            host_config,
            self._observer,
            keep_history=False,
            buggify=self._buggify,
            new_machine=self._machine,
        )
        self._nodes_rng = _child(self.root)
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
            _child(self.root),
            observer=lambda node: self._observer(node, PLACEMENT_GROUP),
        )
        self.cluster.placement = self.placement
        self._pd_rng = _child(self.root)
        for _ in range(config.nodes):
            self._new_node(start=False)
        kinds: tuple[str, ...] = tuple(k for k in SCHEDULED if k in config.faults)
        if config.losses:
            kinds += ("lose",)
        params = replace(config.nemesis, losses=config.losses)
        self.nemesis = RegionNemesis(
            self.cluster,
            _child(self.root),
            params,
            kinds,
            lambda: self._new_node(start=True),
            config.scenario,
        )
        self.keys = tuple(f"key{i}" for i in range(config.keys))
        self.txn = self._new_txn()
        client_rng = _child(self.root)
        self.params = ClientParams(
            keys=self.keys,
            read_weight=_drawn(config.read_weight, client_rng.choice([0.2, 0.4, 0.6])),
            timeout=config.client_timeout * (TXN_TIMEOUT_FACTOR if self.txn else 1),
        )
        self.clients = [
            RoutedClient(
                i,
                config.clients,
                self.cluster,
                _child(self.root),
                self.params,
                self.history,
                self.counts,
                logic=_logic_of(config, i),
                txn=self.txn,
            )
            for i in range(config.clients)
        ]
        self.buggify = Buggify(_child(self.root), config.buggify)
        if self.txn is not None:  # drawn last: the streams above stay what they were
            for client in self.clients:
                client.use_txn_rng(_child(self.root))
            skew = config.tso_wall_skew_ms
            for member in self.placement.setup.members:
                self.placement.wall_skew_ms[member] = self.root.randint(-skew, skew)

    def _machine(self) -> SimStoreMachine:
        return SimStoreMachine(READS_IGNORE_LOCKS in self.config.txn_plants)

    def _new_txn(self) -> TxnContext | None:
        """The clients' cross-region transactions (None: not a transaction workload)."""
        if self.config.workload not in TXN_WORKLOADS:
            return None
        config = self.config
        return new_context(
            config.txn_plants,
            lambda: dict(self.placement.tso_clients),
            config.coordinator_crashes,
            config.crash_stages,
        )

    def _buggify(self, site: str) -> bool:
        return self.buggify(site)

    def _host_config(self, rng: random.Random) -> HostConfig:
        drawn = ReadOnlyOption.LEASE_BASED if rng.random() < 0.5 else ReadOnlyOption.SAFE
        read_mode = self.config.read_mode or drawn
        raft = Config(
            id=1,
            election_tick=10,
            heartbeat_tick=2,
            check_quorum=True,
            pre_vote=_drawn(self.config.pre_vote, rng.random() < 0.75),
            read_only_option=read_mode,
            max_size_per_msg=_drawn(self.config.max_size_per_msg, rng.choice([64, 1 << 20])),
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
            hibernate=_drawn(self.config.hibernate, rng.random() < 0.5),
            inline_sync_entries=8 if seed % 3 == 0 else 0,
            pipeline_depth=1 if seed % 2 else 4,
        )

    def _faults(self, rng: random.Random) -> NetworkFaults:
        faults = self.config.faults
        return NetworkFaults(
            drop=rng.uniform(0.0, 0.05) if "drop" in faults else 0.0,
            duplicate=rng.uniform(0.0, 0.03) if "duplicate" in faults else 0.0,
            long_delay=rng.uniform(0.0, 0.03) if "delay" in faults else 0.0,
            reorder="reorder" in faults,
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
        rng = _child(self._nodes_rng)
        node = self.cluster.add_node(node_id, rng, background_sync=self.config.background_sync)
        skew = self.config.clock_skew
        rate = 1.0 + rng.uniform(-skew, skew)
        node.clock_rate = rate if "clock-skew" in self.config.faults else 1.0
        if start:
            self.cluster.start(node_id)

    # -- checking ----------------------------------------------------------------------

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
        raise InvariantViolationError(Violation(kind, self.loop.steps, self.loop.now, text))

    def step(self) -> bool:
        """Run one event and check it."""
        ran = self.loop.run_one()
        self.check()
        return ran

    # -- convergence -------------------------------------------------------------------

    def unconverged(self) -> str | None:
        """Why the cluster is not at its declared placement yet (None: it is)."""
        if self.placement.leader() is None:
            return "the placement group has no serving leader"
        for region in (self.cluster.applied[i] for i in sorted(self.cluster.applied)):
            problem = self._region_problem(region)
            if problem is not None:
                return f"region {region.id}: {problem}"
        return None

    def _region_problem(self, region: Region) -> str | None:
        voters = region.voters()
        if len(voters) != self.config.replicas or region.learners():
            return f"{len(voters)} voters, {len(region.learners())} learners"
        leaders = 0
        for peer in region.peers:
            problem = self._peer_problem(region, peer)
            if problem is not None:
                return problem
            host = self.cluster.host(peer.node_id)
            assert host is not None
            leaders += host.peers[region.id].replica.is_leader
        return None if leaders == 1 else f"{leaders} leaders"

    def _peer_problem(self, region: Region, peer: Peer) -> str | None:
        host = self.cluster.host(peer.node_id)
        if host is None:
            return f"peer {peer.id} on down node {peer.node_id}"
        local = host.peers.get(region.id)
        if local is None or local.peer_id != peer.id or local.region.epoch != region.epoch:
            return f"peer {peer.id} not at epoch {region.epoch} on node {peer.node_id}"
        if peer.role is not PeerRole.VOTER:
            return f"peer {peer.id} is a learner"
        return None


def first_free_id(config: RegionSimConfig) -> int:
    """The first id the placement driver may hand out: the founding layout's are below."""
    return 1 + config.regions * (1 + config.replicas)


def _bootstrap(run: _Run) -> None:
    first = sorted(run.cluster.nodes)[: run.config.replicas]
    count = run.config.regions
    bounds = [b""] + [slot_bound(SLOT_COUNT * i // count) for i in range(1, count)] + [b""]
    regions = []
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        base = 1 + i * (1 + len(first))
        peers = tuple(Peer(base + 1 + j, n) for j, n in enumerate(first))
        regions.append(Region(base, start, end, peers=peers))
    for node_id in sorted(run.cluster.nodes):
        host = run.cluster.start(node_id)
        if node_id in first:
            for region in regions:
                host.bootstrap_region(region)


def _run_until(run: _Run, steps: int, deadline: int) -> None:
    while run.loop.steps < steps and run.loop.now < deadline and run.step():
        pass


def _converge(run: _Run) -> int | None:
    """Heal, stop the clients, and wait for the declared placement; the time it took."""
    run.converging = True
    run.nemesis.heal_all()
    run.cluster.network.faults = NetworkFaults()
    for client in run.clients:
        client.stopping = True
    start = run.loop.now
    deadline = start + run.config.converge_within
    next_check = start
    while run.loop.now < deadline and run.step():
        if run.loop.now >= next_check:
            next_check = run.loop.now + 50 * MS
            if all(c.idle for c in run.clients) and run.unconverged() is None:
                return run.loop.now - start
    return None


def workload_key(config: RegionSimConfig) -> str:
    """The key (queue, stream) or the keys' prefix (append, bank) of a workload's run."""
    return config.workload_key or WORKLOAD_KEYS[config.workload]


def _logic_of(config: RegionSimConfig, index: int) -> ClientLogic | None:
    """Client `index`'s workload logic (None: a register client), with the list-append's
    share of plain reads from `read_weight`."""
    if config.workload is Workload.REGISTER:
        return None
    logic = new_logic(config.workload, index, workload_key(config))
    if isinstance(logic, AppendLogic) and config.read_weight is not None:
        logic.plain_reads = config.read_weight
    return logic


def _final_workload_read(run: _Run) -> object:
    """The workload's keys as the leaders of their regions hold them (None: some leader
    has not applied all it committed, or a key has no leader)."""
    workload = run.config.workload
    return final_read(
        workload,
        lambda key: _leader_machine(run, key),
        workload_key(run.config),
        EPOCH_MS + run.loop.now // MS,
    )


def _leader_machine(run: _Run, key: str) -> StoreMachine | None:
    """The store of the leader of the region holding `key` (the newest applied
    description, which the coverage check keeps unique), once that leader, at that
    description, has applied all it committed."""
    rkey = range_key(key.encode())
    for region in run.cluster.applied.values():
        if not region.contains(rkey):
            continue
        for member in region.peers:
            host = run.cluster.host(member.node_id)
            peer = host.peers.get(region.id) if host is not None else None
            if peer is None or not peer.replica.is_leader or peer.region.epoch != region.epoch:
                continue
            if peer.replica.applied < peer.replica.raw.log.committed:
                return None
            inner = peer.machine.inner
            assert isinstance(inner, SimStoreMachine)
            return inner.store
    return None


def _final_reads(run: _Run) -> None:
    if run.config.workload is not Workload.REGISTER:
        return
    reader = RoutedClient(
        run.config.clients,
        run.config.clients + 1,
        run.cluster,
        _child(run.root),
        run.params,
        run.history,
        run.counts,
        script=list(run.keys),
    )
    reader.start()
    deadline = run.loop.now + 10_000 * MS
    while not reader.done and run.loop.now < deadline and run.step():
        pass
    if not reader.done:
        run._fail(InvariantKind.COMMITTED_ENTRY_LOST, "final reads did not complete")


def _schedule_placement_fault(run: _Run) -> None:
    """With crashes on (or `pd_crash_at`), crash the placement group's leader once while
    the faults run."""
    forced = run.config.pd_crash_at
    if "crash" not in run.config.faults and forced is None:
        return
    rng = run._pd_rng
    nemesis = run.nemesis
    at = rng.randint(*(forced or PD_CRASH_AFTER))
    down_for = rng.randint(1 * MS, nemesis.params.max_down)

    def strike() -> None:
        if nemesis.active or (forced is not None and not run.converging):
            run.placement.crash_leader(down_for, nemesis.count)
        every = run.config.pd_crash_every
        if forced is not None and every and not run.converging:
            run.loop.call_later(every, HARNESS, "pd leader crash", strike)

    run.loop.call_later(at, HARNESS, "pd leader crash", strike)


def _execute(run: _Run) -> int | None:
    _bootstrap(run)
    for client in run.clients:
        client.start()
    run.nemesis.start()
    _schedule_placement_fault(run)
    converged = None
    try:
        _run_until(run, run.config.steps, 10**18)
        converged = _converge(run)
        if converged is None:
            why = run.unconverged() or "clients still busy"
            run._fail(
                InvariantKind.NODE_FAILED,
                f"convergence: not converged within {run.config.converge_within // MS} ms: {why}",
            )
        _final_reads(run)
        if run.txn is not None:
            settle(run, lambda key: _leader_machine(run, key))
        run.check_replicas()
    except InvariantViolationError as exc:
        run.violation = exc.violation
    return converged


def run_region_simulation(config: RegionSimConfig) -> RegionSimResult:
    """Run one multi-region simulation; the same config always gives the same result."""
    run = _Run(config)
    converged = _execute(run)
    verdict = None
    checked = None
    if run.violation is None and config.workload is not Workload.REGISTER:
        checked = check_workload(config.workload, run.history, _final_workload_read(run))
        if run.txn is not None:
            checked = with_transactions(run.txn, run.clients, checked)
    elif run.violation is None and config.check_linearizability:
        verdict = check_history(run.history)
    run.loop.record(f"final draw {run.root.random()}")
    steps = run.placement.agent_stats.steps
    faults = dict(sorted(run.nemesis.counts.items()))
    net = run.cluster.network
    for name, count in (("drop", net.dropped), ("duplicate", net.duplicated)):
        if count:
            faults[name] = count
    return RegionSimResult(
        seed=config.seed,
        steps=run.loop.steps,
        virtual_time=run.loop.now,
        ops_ok=run.counts.ok,
        ops_failed=run.counts.failed,
        ops_unknown=run.counts.unknown,
        stale_refusals=sum(c.stale_refusals for c in run.clients),
        regions=len(run.cluster.applied),
        splits=len(run.cluster.applied) + len(run.cluster.retired) - config.regions,
        merges=len(run.cluster.retired),
        moves=steps.get("AddLearner", 0),
        faults=faults,
        converged_after=converged,
        violation=run.violation,
        verdict=verdict,
        digest=run.loop.digest(),
        history=tuple(run.history) if config.keep_history else (),
        trace=tuple(run.loop.trace or ()) if config.keep_trace else (),
        placement=_placement_figures(run),
        read_mode=run.read_mode,
        buggified=tuple(sorted(s for s, on in run.buggify.sites.items() if on)),
        buggify_fired=dict(sorted(run.buggify.fired.items())),
        workload=config.workload,
        workload_verdict=checked,
        transactions=run.txn.stats.figures() if run.txn is not None else {},
    )


def _placement_figures(run: _Run) -> dict[str, int]:
    stats = run.placement.agent_stats
    return {
        "requests": stats.requests,
        "served": stats.served,
        "refused": stats.refused,
        "timeouts": stats.timeouts,
        "stale_peers": stats.stale_peers,
        "merge_commits": stats.merges_committed,
    }
