"""Deterministic simulation of whole multi-region Cairn clusters (FoundationDB-style).

`run_region_simulation(RegionSimConfig(seed=...))` runs one seeded cluster of region
hosts, the placement driver and its agents, routed clients over the real store machine,
under faults in virtual time; it checks Raft's safety invariants in every group at every
step, the layout's coverage of the keyspace, convergence, and the history (for
linearizability, or with a workload's own checker), and returns a `RegionSimResult` with
a trace digest: the same seed always gives the same digest.
"""

from cairn.sim.invariants import InvariantKind, Violation
from cairn.sim.region_config import EVERY_FAULT, REGION_FAULTS, RegionSimConfig, RegionSimResult
from cairn.sim.region_runner import run_region_simulation
from cairn.sim.workloads import Workload

__all__ = [
    "EVERY_FAULT",
    "REGION_FAULTS",
    "InvariantKind",
    "RegionSimConfig",
    "RegionSimResult",
    "Violation",
    "Workload",
    "run_region_simulation",
]
