"""`run_simulation`: one seeded run of a whole cluster under faults, checked end to end.

Theory of operation. One `random.Random(seed)` is the root of every random choice; each
component gets its own child stream, drawn from the root in a fixed order, so adding a
draw in one component does not shift the others. A run: build N bootstrapped nodes,
start clients and the nemesis, execute `steps` events while the invariant checker watches
every persist, commit and apply; then heal everything, stop the clients, let the cluster
settle, check that the leader still holds every committed entry, and hand the recorded
history to the linearizability checker. The result carries counts, the first violation
(if any), the checker's verdict and the trace digest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cairn.check.history import Op
from cairn.check.linearizability import Verdict, check_history
from cairn.raft.config import Config, PlantedBug
from cairn.raft.types import ConfState, NodeId, ReadOnlyOption
from cairn.shard.replica import ReplicaConfig
from cairn.sim.client import ClientParams, HistoryCounts, SimClient
from cairn.sim.cluster import Cluster, NodeState, SimNode
from cairn.sim.disk import SimDisk
from cairn.sim.env import Buggify
from cairn.sim.invariants import InvariantChecker, InvariantViolationError, Violation
from cairn.sim.loop import EventLoop
from cairn.sim.nemesis import ALL_FAULTS, Fault, Nemesis, NemesisParams
from cairn.sim.network import NetworkFaults, SimNetwork
from cairn.sim.redis_machine import EPOCH_MS, MachineKind
from cairn.sim.scenarios import Scenario
from cairn.sim.workloads import (
    ClientLogic,
    Workload,
    WorkloadVerdict,
    check_workload,
    final_read,
    new_logic,
)
from cairn.store.machine import StoreMachine

MS = 1_000_000
T = TypeVar("T")
DEFAULT_NEMESIS = NemesisParams()
TICK = 0.01
"""Seconds per Raft tick."""
WORKLOAD_KEYS = {
    Workload.QUEUE: "q0",
    Workload.STREAM: "s0",
    Workload.APPEND: "{la}",
    Workload.BANK: "{bank}",
}
"""The one key a queue or stream run works on (append, bank: the hash tag of their keys)."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One run's parameters; everything not given here is drawn from `seed`.

    `read_mode` forces ReadIndex (`SAFE`) or lease reads; by default each seed picks one.
    `settle` is the virtual time (ns) allowed after healing for the cluster to converge.

    The remaining knobs shape a fault schedule aimed at one kind of bug (see
    `cairn.sim.profiles`): `scenario` adds a scripted nemesis; `pre_vote`,
    `max_size_per_msg` and `max_inflight_msgs` force Raft settings that are otherwise
    drawn per seed (None: drawn); `clock_skew` bounds each node's clock rate error under
    `Fault.CLOCK_SKEW`; `jitter` is the network's latency spread (ns); `read_weight` the
    share of reads (None: drawn), except for the first `readers` clients, which only
    read; `client_timeout` how long a client waits (ns); `nemesis` the timing of the
    scheduled and hooked faults.
    """

    seed: int
    nodes: int = 5
    steps: int = 5000
    faults: frozenset[Fault] = ALL_FAULTS
    planted: frozenset[PlantedBug] = frozenset()
    clients: int = 4
    keys: int = 3
    read_mode: ReadOnlyOption | None = None
    machine: MachineKind | None = None
    """The replicated state machine: by default even seeds run `cairn.store`'s Redis
    commands, odd seeds the simulator's get/put/append/cas model."""
    settle: int = 3000 * MS
    keep_history: bool = False
    keep_trace: bool = False
    buggify: bool = True
    check_linearizability: bool = True
    scenario: Scenario = Scenario.NONE
    pre_vote: bool | None = None
    max_size_per_msg: int | None = None
    max_inflight_msgs: int | None = None
    clock_skew: float = 0.01
    jitter: int = 2 * MS
    read_weight: float | None = None
    readers: int = 0
    client_timeout: int = 400 * MS
    nemesis: NemesisParams = DEFAULT_NEMESIS
    workload: Workload = Workload.REGISTER
    """What clients do: registers (checked for linearizability), or a queue or a stream
    on the Redis machine (`cairn.sim.workloads`, checked by `cairn.check.queue` and
    `cairn.check.stream` against a final read of the leader's state). A queue or
    stream run always replicates the Redis machine, whatever `machine` says."""

    def __post_init__(self) -> None:
        if self.nodes not in (1, 3, 5, 7):
            raise ValueError(f"nodes must be 1, 3, 5 or 7, not {self.nodes}")
        if self.steps < 0 or self.clients < 1 or self.keys < 1:
            raise ValueError("steps must be >= 0, clients and keys >= 1")
        if not 0 <= self.readers <= self.clients:
            raise ValueError(f"readers must be in [0, clients], not {self.readers}")
        if not 0.0 <= self.clock_skew < 0.5:
            raise ValueError(f"clock_skew must be in [0, 0.5), not {self.clock_skew}")


@dataclass(frozen=True, slots=True)
class SimResult:
    """What one run did and whether it stayed safe."""

    seed: int
    nodes: int
    steps: int
    virtual_time: int
    read_mode: ReadOnlyOption
    machine: MachineKind
    ops_ok: int
    ops_failed: int
    ops_unknown: int
    elections: int
    leaders_per_term: dict[int, NodeId]
    faults: dict[str, int]
    commits: int
    violation: Violation | None
    verdict: Verdict | None
    digest: str
    settled: bool
    buggified: tuple[str, ...] = ()
    workload: Workload = Workload.REGISTER
    workload_verdict: WorkloadVerdict | None = None
    """A queue or stream run's check (None: a register run, or a violation stopped it)."""
    history: tuple[Op, ...] = ()
    trace: tuple[str, ...] = ()

    @property
    def linearizable(self) -> bool | None:
        """The checker's answer: True, False, or None when it was not run or gave up."""
        if self.verdict is None or self.verdict.unknown:
            return None
        return self.verdict.ok

    @property
    def failure(self) -> str | None:
        """The first broken property in words, or None when the run stayed safe."""
        if self.violation is not None:
            return str(self.violation)
        if self.linearizable is False and self.verdict is not None:
            return f"linearizability (key {self.verdict.key!r}): {self.verdict.explanation}"
        if self.workload_verdict is not None and self.workload_verdict.failure is not None:
            return f"{self.workload.value} check: {self.workload_verdict.failure}"
        return None

    @property
    def ok(self) -> bool:
        """Whether no invariant broke and the history was not found non-linearizable."""
        return self.failure is None


@dataclass(slots=True)
class _Run:
    """The live parts of one run."""

    config: SimConfig
    root: random.Random
    loop: EventLoop
    checker: InvariantChecker
    cluster: Cluster
    nemesis: Nemesis
    clients: list[SimClient]
    history: list[Op]
    counts: HistoryCounts
    read_mode: ReadOnlyOption
    buggify: Buggify
    violation: Violation | None = None
    settled: bool = False
    extra: dict[str, int] = field(default_factory=dict)


class _LateHooks:
    """Forwards fault hooks to the nemesis, which is built after the cluster."""

    target: Nemesis | None = None

    def after_vote(self, node_id: NodeId) -> None:
        if self.target is not None:
            self.target.after_vote(node_id)

    def after_election(self, node_id: NodeId) -> None:
        if self.target is not None:
            self.target.after_election(node_id)

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        if self.target is not None:
            self.target.after_commit(node_id, commit)


def _child(root: random.Random) -> random.Random:
    return random.Random(root.getrandbits(64))


def _network_faults(config: SimConfig, rng: random.Random) -> NetworkFaults:
    faults = config.faults
    return NetworkFaults(
        drop=rng.uniform(0.0, 0.08) if Fault.DROP in faults else 0.0,
        duplicate=rng.uniform(0.0, 0.05) if Fault.DUPLICATE in faults else 0.0,
        long_delay=rng.uniform(0.0, 0.05) if Fault.DELAY in faults else 0.0,
        reorder=Fault.REORDER in faults,
        jitter=config.jitter,
    )


def _drawn(forced: T | None, drawn: T) -> T:
    """`forced` unless it is None. The draw happens either way, so forcing one knob does
    not shift the random choices made after it."""
    return drawn if forced is None else forced


def _replica_config(
    config: SimConfig, read_mode: ReadOnlyOption, rng: random.Random
) -> ReplicaConfig:
    raft = Config(
        id=1,
        election_tick=10,
        heartbeat_tick=2,
        check_quorum=True,
        pre_vote=_drawn(config.pre_vote, rng.random() < 0.75),
        read_only_option=read_mode,
        max_inflight_msgs=_drawn(config.max_inflight_msgs, rng.choice([4, 64, 256])),
        max_size_per_msg=_drawn(config.max_size_per_msg, rng.choice([64, 1 << 20])),
        bugs=config.planted,
    )
    threshold = rng.choice([20, 50, 200, 1000])
    return ReplicaConfig(raft=raft, tick_interval=TICK, snapshot_threshold=threshold)


def _build(config: SimConfig) -> _Run:
    root = random.Random(config.seed)
    loop = EventLoop(trace=[] if config.keep_trace else None)
    read_mode = config.read_mode or (
        ReadOnlyOption.LEASE_BASED if root.random() < 0.5 else ReadOnlyOption.SAFE
    )
    replica_config = _replica_config(config, read_mode, _child(root))
    network = SimNetwork(loop, _child(root), _network_faults(config, _child(root)))
    checker = InvariantChecker(lambda: (loop.steps, loop.now))
    buggify = Buggify(_child(root), config.buggify)
    nodes_rng = _child(root)
    skew = Fault.CLOCK_SKEW in config.faults
    voters = tuple(range(1, config.nodes + 1))

    def new_node(node_id: NodeId) -> SimNode:
        rng = _child(nodes_rng)
        rate = 1.0 + rng.uniform(-config.clock_skew, config.clock_skew) if skew else 1.0
        bootstrap = ConfState(voters=voters) if node_id in voters else None
        return SimNode(node_id, SimDisk(_child(rng)), rng, rate, bootstrap)

    hooks = _LateHooks()
    machine = config.machine or (MachineKind.REDIS if config.seed % 2 == 0 else MachineKind.KV)
    if config.workload is not Workload.REGISTER:
        machine = MachineKind.REDIS
    cluster = Cluster(loop, network, checker, replica_config, buggify, hooks, machine)
    for node_id in voters:
        cluster.add_node(new_node(node_id))
    nemesis = Nemesis(
        cluster, _child(root), config.faults, config.nemesis, new_node, config.scenario
    )
    hooks.target = nemesis
    history: list[Op] = []
    counts = HistoryCounts()
    client_rng = _child(root)
    params = ClientParams(
        keys=tuple(f"k{i}" for i in range(config.keys)),
        read_weight=_drawn(config.read_weight, client_rng.choice([0.2, 0.4, 0.6, 0.8])),
        timeout=config.client_timeout,
    )
    reader = replace(params, read_weight=1.0)
    clients = [
        SimClient(
            i,
            config.clients,
            cluster,
            _child(root),
            reader if i < config.readers else params,
            history,
            counts,
            _logic(config, i),
        )
        for i in range(config.clients)
    ]
    return _Run(
        config, root, loop, checker, cluster, nemesis, clients, history, counts, read_mode, buggify
    )


def _logic(config: SimConfig, index: int) -> ClientLogic | None:
    """Client `index`'s queue or stream logic (None: a register client)."""
    if config.workload is Workload.REGISTER:
        return None
    return new_logic(config.workload, index, WORKLOAD_KEYS[config.workload])


def _step(run: _Run) -> bool:
    """Run one event, then stop the run if it broke an invariant or a node's driver.

    The checker raises from inside observer hooks, but that raise passes through the node
    driver, which may swallow it (it stops itself on any exception); so the checker's
    record and each driver's failure are looked at after every event.
    """
    ran = run.loop.run_one()
    if run.checker.violation is not None:
        raise InvariantViolationError(run.checker.violation)
    for node_id, node in sorted(run.cluster.nodes.items()):
        if node.replica is not None and node.replica.failure is not None:
            run.checker.node_failed(node_id, node.replica.failure)
    return ran


def _run_steps(run: _Run, until_steps: int, until_time: int | None = None) -> None:
    loop = run.loop
    while loop.steps < until_steps and (until_time is None or loop.now < until_time):
        if not _step(run):
            return


def _settle(run: _Run) -> None:
    """Heal every fault, stop the clients, and run until they are idle and time is up."""
    run.nemesis.heal_all()
    run.cluster.network.faults = NetworkFaults()
    for client in run.clients:
        client.stopping = True
    deadline = run.loop.now + run.config.settle
    loop = run.loop
    while loop.now < deadline and _step(run):
        if all(c.idle for c in run.clients) and loop.now >= deadline - run.config.settle // 2:
            break
    leader = run.cluster.leader()
    run.settled = leader is not None and all(c.idle for c in run.clients)
    if leader is not None:
        log = leader.raw.log
        run.checker.final_check(leader.node_id, lambda i: log.term(i) or None, log.first_index())


def _execute(run: _Run) -> None:
    for node_id in run.cluster.ids(None):
        run.cluster.start(node_id)
    for client in run.clients:
        client.start()
    run.nemesis.start()
    try:
        _run_steps(run, run.config.steps)
        _settle(run)
    except InvariantViolationError as exc:
        run.violation = exc.violation


def run_simulation(config: SimConfig) -> SimResult:
    """Run one simulation; the same `config` always gives the same result and digest."""
    run = _build(config)
    _execute(run)
    verdict = None
    checked = None
    if run.violation is None and config.workload is not Workload.REGISTER:
        checked = check_workload(config.workload, run.history, _final_read(run))
    elif run.violation is None and config.check_linearizability:
        verdict = check_history(run.history)
    run.loop.record(f"final draw {run.root.random()}")
    return replace(_result(run, verdict), workload=config.workload, workload_verdict=checked)


def _final_read(run: _Run) -> object:
    """The queue or stream as the settled leader holds it, once it has applied everything
    it committed (None: no such leader)."""
    leader = run.cluster.leader()
    if leader is None or leader.applied < leader.raw.log.committed:
        return None
    machine = run.cluster.nodes[leader.node_id].machine
    if not isinstance(machine, StoreMachine):
        return None
    key = WORKLOAD_KEYS[run.config.workload]
    return final_read(run.config.workload, machine, key, EPOCH_MS + run.loop.now // MS)


def _result(run: _Run, verdict: Verdict | None) -> SimResult:
    config = run.config
    return SimResult(
        seed=config.seed,
        nodes=config.nodes,
        steps=run.loop.steps,
        virtual_time=run.loop.now,
        read_mode=run.read_mode,
        machine=run.cluster.machine_kind,
        ops_ok=run.counts.ok,
        ops_failed=run.counts.failed,
        ops_unknown=run.counts.unknown,
        elections=run.checker.elections,
        leaders_per_term=dict(sorted(run.checker.leaders.items())),
        faults=dict(sorted(run.nemesis.counts.items())) | _network_counts(run),
        commits=run.checker.commit_index,
        violation=run.violation,
        verdict=verdict,
        digest=run.loop.digest(),
        settled=run.settled,
        buggified=tuple(sorted(s for s, on in run.buggify.sites.items() if on)),
        history=tuple(run.history) if config.keep_history else (),
        trace=tuple(run.loop.trace or ()) if config.keep_trace else (),
    )


def _network_counts(run: _Run) -> dict[str, int]:
    net = run.cluster.network
    counts = {
        Fault.DROP.value: net.dropped,
        Fault.DUPLICATE.value: net.duplicated,
        Fault.DELAY.value: net.delayed,
        Fault.REORDER.value: net.reordered,
    }
    lost = sum(node.disk.lost_writes for node in run.cluster.nodes.values())
    counts["disk:lost-writes"] = lost
    if Fault.CLOCK_SKEW in run.config.faults:
        counts[Fault.CLOCK_SKEW.value] = sum(
            1 for node in run.cluster.nodes.values() if node.clock_rate != 1.0
        )
    return {k: v for k, v in sorted(counts.items()) if v}


__all__ = ["NodeState", "SimConfig", "SimResult", "run_simulation"]
