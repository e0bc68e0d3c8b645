"""The end of a transaction workload's run: the locks left settled before the final
read, and the verdict completed with what the transactions did (`cairn.sim.txn_client`).

Coordinators that died, or whose clients gave up, leave locks nobody may have met before
the clients stopped. `settle` runs an unrecorded reader over the workload's keys that
still hold a lock at their region's leader: it meets each lock and resolves it as any
client would (rolled forward or back from the primary's status), round after round,
until none is left; a lock still there after `SETTLE_WITHIN` of virtual time fails the
run. `with_transactions` adds the transactions' figures to the workload's verdict and
fails it when the timestamps the coordinators were given went backwards in real time.

Pure: no I/O, no clock but the event loop's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from cairn.raft.types import NodeId
from cairn.sim.invariants import InvariantKind
from cairn.sim.region_client import RoutedClient
from cairn.sim.store_range import EPOCH_MS
from cairn.sim.txn_client import LOCK_TTL_MS, TxnContext, lock_on
from cairn.sim.txn_workloads import accounts_of, keys_of
from cairn.sim.workloads import Workload, WorkloadVerdict
from cairn.store.machine import StoreMachine
from cairn.txn import TxnSettings
from cairn.txn.coordinator import SECONDARIES_FIRST

if TYPE_CHECKING:
    from cairn.sim.region_run import RegionRun as _Run

MS = 1_000_000
SETTLE_WITHIN = 10_000 * MS
"""Virtual time allowed, after convergence, to resolve the locks dead coordinators left."""

LeaderMachine = Callable[[str], StoreMachine | None]
"""The store of the leader of the region holding a key (None: none can be read)."""


def new_context(
    plants: frozenset[str],
    tso_clients: Callable[[], dict[NodeId, object]],
    crash_rate: float,
    crash_stages: tuple[str, ...],
) -> TxnContext:
    """A run's `TxnContext`: the simulated lock ttl, the coordinator's plant if chosen."""
    settings = TxnSettings(lock_ttl_ms=LOCK_TTL_MS, plants=plants & {SECONDARIES_FIRST})
    return TxnContext(settings, tso_clients, crash_rate, crash_stages)


def workload_keys(workload: Workload, prefix: str) -> list[str]:
    """Every key of a transaction workload's run."""
    return accounts_of(prefix) if workload is Workload.BANK else keys_of(prefix)


def locks_left(keys: Sequence[str], leader_machine: LeaderMachine, now_ms: int) -> list[str]:
    """The keys whose region leader still holds a lock on them."""
    left = []
    for key in keys:
        machine = leader_machine(key)
        if machine is not None and lock_on(machine, key, now_ms) is not None:
            left.append(key)
    return left


def settle(run: _Run, leader_machine: LeaderMachine) -> None:
    """Resolve the locks left on the workload's keys (module docstring)."""
    from cairn.sim.region_config import workload_key

    keys = workload_keys(run.config.workload, workload_key(run.config))
    deadline = run.loop.now + SETTLE_WITHIN
    rounds = 0
    while run.loop.now < deadline:
        left = locks_left(keys, leader_machine, EPOCH_MS + run.loop.now // MS)
        if not left:
            return
        rounds += 1
        reader = RoutedClient(
            run.config.clients + rounds,
            run.config.clients + 1,
            run.cluster,
            random.Random(rounds),
            run.params,
            run.history,
            run.counts,
            script=left,
            txn=run.txn,
            txn_rng=random.Random(rounds),
            record=False,
        )
        reader.start()
        while not reader.done and run.loop.now < deadline and run.step():
            pass
        reader.stopping = True
    left = locks_left(keys, leader_machine, EPOCH_MS + run.loop.now // MS)
    if left:
        run._fail(InvariantKind.NODE_FAILED, f"locks on {left} not resolved at the end")


def with_transactions(
    context: TxnContext, clients: Sequence[RoutedClient], verdict: WorkloadVerdict
) -> WorkloadVerdict:
    """`verdict` with what the transactions did, failed (`tso-order`) when a timestamp
    was not above every one received before it was asked for."""
    stats = context.stats
    stats.resolved += sum(c.resolver.resolved for c in clients if c.resolver is not None)
    stats.checked += sum(c.resolver.checked for c in clients if c.resolver is not None)
    details = (
        f"{verdict.details}; transactions: {stats.cross_region} cross-region, "
        f"{stats.single_region} single-region, {stats.coordinator_crashes} coordinator "
        f"crashes, {stats.gave_up} given up, {stats.locked} locks met, "
        f"{stats.resolved} resolved ({stats.checked} async commits decided by their "
        f"secondaries), {len(context.tso.got)} timestamps"
    )
    found = context.tso.violations()
    if not found:
        return replace(verdict, details=details)
    text = "tso-order: " + "; ".join(found[:3])
    failure = text if verdict.failure is None else f"{verdict.failure}; {text}"
    anomalies = verdict.anomalies + len(found)
    return replace(verdict, failure=failure, details=details, anomalies=anomalies)
