"""Deterministic simulation of whole Cairn clusters (FoundationDB-style).

`run_simulation(SimConfig(seed=...))` runs one seeded cluster under faults in virtual time,
checks Raft's safety invariants at every step and the history for linearizability, and
returns a `SimResult` with a trace digest: the same seed always gives the same digest.
"""

from cairn.sim.invariants import InvariantKind, Violation
from cairn.sim.nemesis import ALL_FAULTS, Fault
from cairn.sim.runner import SimConfig, SimResult, run_simulation
from cairn.sim.scenarios import Scenario

__all__ = [
    "ALL_FAULTS",
    "Fault",
    "InvariantKind",
    "Scenario",
    "SimConfig",
    "SimResult",
    "Violation",
    "run_simulation",
]
