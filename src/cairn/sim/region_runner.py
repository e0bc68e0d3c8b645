"""`run_region_simulation`: one seeded multi-region run with splits, merges, moves and node
loss, checked at every event and at the end.

Theory of operation. The cluster starts with `nodes` hosts and `regions` regions on the
first `replicas` of them (`_bootstrap`); routed clients (`cairn.sim.region_workload`)
write and read a few keys spread over the slots; the placement driver runs in its own
Raft group on the first three nodes, with an agent on every node heartbeating it and
executing its steps (`cairn.sim.region_pd`), all through the same network and clocks;
its thresholds are tiny, so regions split as they grow and merge as they shrink,
replicas move, and lost nodes are repaired; the faults (`cairn.sim.region_faults`)
partition, crash, pause and lose nodes, on a network that drops, duplicates, delays and
reorders, with clocks that drift, and when crashes are on, the placement group's leader
is crashed once too.

The run's parts and the checks after every event are `cairn.sim.region_run.RegionRun`
(Raft safety in every group, no failed driver, the layout tiling the keyspace). After
`steps` events the faults stop (lost nodes stay lost), clients stop, and the cluster must
converge (`cairn.sim.region_checks`); then a register run reads every key once more, a
transaction run settles the locks its dead coordinators left, and the history is checked
(for linearizability, or with the workload's own checker). The result carries the trace
digest: same seed, same digest. The config and the result are `cairn.sim.region_config`.
"""

from __future__ import annotations

import itertools

from cairn.meta.region import Peer, Region, slot_bound
from cairn.sim.invariants import InvariantKind, InvariantViolationError
from cairn.sim.region_checks import converge, history_verdicts, leader_machine, unconverged
from cairn.sim.region_config import MS, RegionSimConfig, RegionSimResult
from cairn.sim.region_faults import schedule_placement_fault
from cairn.sim.region_run import RegionRun
from cairn.sim.region_workload import final_reads
from cairn.sim.txn_run import settle
from cairn.store.slot import SLOT_COUNT

__all__ = ["run_region_simulation"]


def run_region_simulation(config: RegionSimConfig) -> RegionSimResult:
    """Run one multi-region simulation; the same config always gives the same result."""
    run = RegionRun(config)
    converged = _execute(run)
    verdict, checked = history_verdicts(run)
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


def _execute(run: RegionRun) -> int | None:
    """Start the cluster, the clients and the faults; run the steps, converge, read back
    and settle; the time convergence took (None: it did not, or a violation stopped the
    run: then `run.violation` holds it)."""
    _bootstrap(run)
    for client in run.clients:
        client.start()
    run.nemesis.start()
    schedule_placement_fault(run)
    converged = None
    try:
        _run_until(run, run.config.steps, 10**18)
        converged = converge(run)
        if converged is None:
            why = unconverged(run) or "clients still busy"
            run._fail(
                InvariantKind.NODE_FAILED,
                f"convergence: not converged within {run.config.converge_within // MS} ms: {why}",
            )
        final_reads(run)
        if run.txn is not None:
            settle(run, lambda key: leader_machine(run, key))
        run.check_replicas()
    except InvariantViolationError as exc:
        run.violation = exc.violation
    return converged


def _bootstrap(run: RegionRun) -> None:
    """Found `regions` regions cut at slot boundaries on the first nodes, start them all."""
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


def _run_until(run: RegionRun, steps: int, deadline: int) -> None:
    while run.loop.steps < steps and run.loop.now < deadline and run.step():
        pass


def _placement_figures(run: RegionRun) -> dict[str, int]:
    stats = run.placement.agent_stats
    return {
        "requests": stats.requests,
        "served": stats.served,
        "refused": stats.refused,
        "timeouts": stats.timeouts,
        "stale_peers": stats.stale_peers,
        "merge_commits": stats.merges_committed,
    }
