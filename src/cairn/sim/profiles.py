"""Named run profiles: the random schedule, and fault schedules aimed at one bug each.

A profile is a `SimConfig` with `seed=0`; sweep it with `dataclasses.replace(profile,
seed=s)`. The random profile is the CI sweep's. Each targeted profile pairs a scripted
scenario (`cairn.sim.scenarios`) with the settings that make its interleaving likely, and
`tests/sim/test_planted_bugs.py` proves both directions: with the planted bug on, a
violation appears within a few seeds; with it off, the same seeds stay safe.

* `figure-8` — the Raft paper's Figure 8. One entry per append message and one message
  in flight (`max_size_per_msg=1`, `max_inflight_msgs=1`), so a new leader brings a
  follower up to date entry by entry and an old entry reaches a quorum before the
  leader's no-op does. No random faults: the script does the partitions and crashes.
* `split-vote` — two candidates in one term with voters crashing right after they vote
  and restarting at once. Three nodes (one voter decides), no pre-vote (candidates go
  straight to a term), 10 ms of latency jitter (the two candidates' requests reach the
  voter apart, around its restart) and ReadIndex reads (with lease reads a restarted
  node refuses votes for an election timeout, which would hide a forgotten vote).
* `stale-leader` — the leader is cut off from its peers, not from its clients, again and
  again. Lease reads; one key, so every write matters to every read; three of six
  clients only read, so they stay with the old leader as long as it answers, while the
  others write and, with a 100 ms timeout, soon move on to the new leader; clocks run up
  to 5% apart (inside the lease's drift allowance of 2 ticks in 10).
"""

from __future__ import annotations

from cairn.raft.config import PlantedBug
from cairn.raft.types import ReadOnlyOption
from cairn.sim.nemesis import ALL_FAULTS, Fault
from cairn.sim.redis_machine import MachineKind
from cairn.sim.runner import MS, SimConfig
from cairn.sim.scenarios import Scenario

RANDOM = SimConfig(seed=0, steps=5000, faults=ALL_FAULTS)

FIGURE_8 = SimConfig(
    seed=0,
    machine=MachineKind.KV,
    nodes=5,
    steps=5000,
    faults=frozenset(),
    scenario=Scenario.FIGURE_8,
    max_size_per_msg=1,
    max_inflight_msgs=1,
    read_mode=ReadOnlyOption.SAFE,
)

SPLIT_VOTE = SimConfig(
    seed=0,
    machine=MachineKind.KV,
    nodes=3,
    steps=5000,
    faults=frozenset(),
    scenario=Scenario.SPLIT_VOTE,
    pre_vote=False,
    jitter=10 * MS,
    read_mode=ReadOnlyOption.SAFE,
)

STALE_LEADER = SimConfig(
    seed=0,
    machine=MachineKind.KV,
    nodes=5,
    steps=8000,
    faults=frozenset({Fault.CLOCK_SKEW}),
    clock_skew=0.05,
    scenario=Scenario.STALE_LEADER,
    read_mode=ReadOnlyOption.LEASE_BASED,
    keys=1,
    clients=6,
    readers=3,
    read_weight=0.2,
    client_timeout=100 * MS,
)

PROFILES: dict[str, SimConfig] = {
    "random": RANDOM,
    "figure-8": FIGURE_8,
    "split-vote": SPLIT_VOTE,
    "stale-leader": STALE_LEADER,
}
"""Every profile by name."""

EXPOSES: dict[PlantedBug, str] = {
    PlantedBug.DOUBLE_VOTE: "split-vote",
    PlantedBug.NO_TRUNCATE: "figure-8",
    PlantedBug.COMMIT_OLD_TERM: "figure-8",
    PlantedBug.UNSYNCED_VOTE: "split-vote",
    PlantedBug.STALE_LEASE_READ: "stale-leader",
}
"""The profile that exposes each planted bug fastest."""
