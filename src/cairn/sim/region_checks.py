"""The end of a multi-region run: convergence to the declared placement, and the checks
of what the clients saw.

After the run's steps the faults stop and the clients stop; the cluster must converge
within `converge_within` of virtual time (`converge`): every region with exactly the
declared voters, no learners, all on live nodes that hold it at its current epoch, and
one leader, and the placement group with a serving leader (`unconverged` says what is
missing). Then the whole history is checked (`history_verdicts`): a register run's for
linearizability per key (its final reads included, so every acknowledged write must have
survived every split, merge and move); a workload's against a final read of the applied
state of its keys' region leaders (`leader_machine`).

Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn.check.linearizability import Verdict, check_history
from cairn.meta.region import Peer, PeerRole, Region, range_key
from cairn.sim.region_config import MS, workload_key
from cairn.sim.region_faults import stop_faults
from cairn.sim.store_range import EPOCH_MS, SimStoreMachine
from cairn.sim.txn_run import with_transactions
from cairn.sim.workloads import Workload, WorkloadVerdict, check_workload, final_read
from cairn.store.machine import StoreMachine

if TYPE_CHECKING:
    from cairn.sim.region_run import RegionRun

__all__ = ["converge", "history_verdicts", "leader_machine", "unconverged"]


def converge(run: RegionRun) -> int | None:
    """Heal, stop the clients, and wait for the declared placement; the time it took
    (None: not within `converge_within`)."""
    run.converging = True
    stop_faults(run)
    for client in run.clients:
        client.stopping = True
    start = run.loop.now
    deadline = start + run.config.converge_within
    next_check = start
    while run.loop.now < deadline and run.step():
        if run.loop.now >= next_check:
            next_check = run.loop.now + 50 * MS
            if all(c.idle for c in run.clients) and unconverged(run) is None:
                return run.loop.now - start
    return None


def unconverged(run: RegionRun) -> str | None:
    """Why the cluster is not at its declared placement yet (None: it is)."""
    if run.placement.leader() is None:
        return "the placement group has no serving leader"
    applied = run.cluster.applied
    for region in (applied[i] for i in sorted(applied)):
        problem = _region_problem(run, region)
        if problem is not None:
            return f"region {region.id}: {problem}"
    return None


def _region_problem(run: RegionRun, region: Region) -> str | None:
    voters = region.voters()
    if len(voters) != run.config.replicas or region.learners():
        return f"{len(voters)} voters, {len(region.learners())} learners"
    leaders = 0
    for peer in region.peers:
        problem = _peer_problem(run, region, peer)
        if problem is not None:
            return problem
        host = run.cluster.host(peer.node_id)
        assert host is not None
        leaders += host.peers[region.id].replica.is_leader
    return None if leaders == 1 else f"{leaders} leaders"


def _peer_problem(run: RegionRun, region: Region, peer: Peer) -> str | None:
    host = run.cluster.host(peer.node_id)
    if host is None:
        return f"peer {peer.id} on down node {peer.node_id}"
    local = host.peers.get(region.id)
    if local is None or local.peer_id != peer.id or local.region.epoch != region.epoch:
        return f"peer {peer.id} not at epoch {region.epoch} on node {peer.node_id}"
    if peer.role is not PeerRole.VOTER:
        return f"peer {peer.id} is a learner"
    return None


# -- the history ------------------------------------------------------------------------


def history_verdicts(run: RegionRun) -> tuple[Verdict | None, WorkloadVerdict | None]:
    """The linearizability verdict of a register run (None: not checked) and the check
    of a workload run; neither once a violation stopped the run."""
    config = run.config
    if run.violation is None and config.workload is not Workload.REGISTER:
        checked = check_workload(config.workload, run.history, _final_workload_read(run))
        if run.txn is not None:
            checked = with_transactions(run.txn, run.clients, checked)
        return None, checked
    if run.violation is None and config.check_linearizability:
        return check_history(run.history), None
    return None, None


def _final_workload_read(run: RegionRun) -> object:
    """The workload's keys as the leaders of their regions hold them (None: some leader
    has not applied all it committed, or a key has no leader)."""
    workload = run.config.workload
    return final_read(
        workload,
        lambda key: leader_machine(run, key),
        workload_key(run.config),
        EPOCH_MS + run.loop.now // MS,
    )


def leader_machine(run: RegionRun, key: str) -> StoreMachine | None:
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
