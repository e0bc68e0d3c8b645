"""Named multi-region schedules aimed at the planted Raft bugs (`cairn sim --regions`).

A random schedule over many groups rarely lines up what a given bug needs, so these aim
the nemesis at it: they keep
the faults that expose a kind of bug, strike at the hooked moments more often or follow
a script against one region (`cairn.sim.region_scenarios`), and leave out node loss (no
replica moves to wait for), so a planted bug shows up within a few seeds.
`tests/sim/test_region_plants.py` proves it: with the bug on, a sweep of these profiles
is caught; with no bug, the same seeds stay safe.

* `region-elections` — many elections in every region at once: crashes right after a
  vote (quick restarts, so a forgotten vote can be cast again in the same term), pauses
  and partitions, pre-vote off, so candidates split the vote. Exposes DOUBLE_VOTE and
  UNSYNCED_VOTE.
* `region-figure-8` — the Raft paper's Figure 8 scripted against region 1, replicated on
  all five nodes (`cairn.sim.region_scenarios.RegionFigure8`), one entry per message,
  many writers on few keys. Exposes NO_TRUNCATE and COMMIT_OLD_TERM.
* `region-stale-leader` — lease reads, with leaders paused and cut off while clocks drift:
  a deposed leader that still trusts its lease serves a stale read. Exposes
  STALE_LEASE_READ.
* `region-splits` — one region that splits again and again under twenty writers on
  thirty keys, with background fsyncs, long message delays and pauses, which hold a
  split's entry between its proposal and its apply while writes routed under the old
  epoch pile up behind it. Exposes the node-level SPLIT_KEY_LEFT_BEHIND (a split keeps
  the keys at its split point: the new region lacks them) and APPLY_OUT_OF_RANGE (a write
  applied in the region a split just took its key from), both seen by the final reads.

Cross-region transactions (`cairn.sim.txn_client`; `TXN_EXPOSES`, proven by
`tests/sim/test_sim_txn.py`): no network faults, so transactions commit quickly and
often, and many coordinators die mid-way.

* `txn-crashes` — the bank, half of the coordinators dying right after their first
  commit went out or right after their last prewrite did. Exposes
  `txn-secondaries-first`: a coordinator that dies after committing its secondaries
  before its commit point leaves its primary to be rolled back, so money appears or
  vanishes.

* `txn-stale-read` — list-append with half of the operations plain LRANGEs of one key
  on the leader, half of the coordinators dying right after answering: the secondaries
  of an acknowledged transaction stay locked until someone resolves them. Exposes
  `reads-ignore-locks`: a read that skips the lock returns the list from before an
  acknowledged transaction (Elle: G-single-realtime).
* `txn-tso` — the bank with the placement group's leader crashed every 250 ms and the
  members' wall clocks up to a second apart. Exposes `tso-backwards`: a new leader that
  starts from its own clock hands out timestamps below the old one's. The store keeps
  one version per key, so no value read depends on a timestamp's order and neither
  checker of the data can see it; the run's own check of every timestamp its
  coordinators were given (`cairn.sim.txn_client.TsoLog`, real-time order) does.
* `txn-faults` — the bank or list-append (`--workload`) under every fault kind, power
  loss and the placement leader's crash included, struck every 0.3 to 1.5 s instead of
  every 30 to 250 ms, with buggify on and a client that waits 2 s for a transaction. Not
  aimed at a plant: under `--faults all`'s pace some node is down most of the time, the
  placement group (three members) is often without a quorum, and hardly a cross-region
  transaction completes, so such runs prove little about transactions. Here each seed
  acknowledges tens of them through crashes, partitions and leader changes
  (`tests/sim/test_sim_txn_faults.py` holds a sweep to a floor).
"""

from __future__ import annotations

from cairn.placement.tso import TSO_BACKWARDS
from cairn.raft.config import PlantedBug
from cairn.raft.types import ReadOnlyOption
from cairn.sim.region_config import REGION_FAULTS, RegionSimConfig
from cairn.sim.region_nemesis import RegionNemesisParams
from cairn.sim.txn_client import READS_IGNORE_LOCKS
from cairn.sim.workloads import Workload
from cairn.txn.coordinator import SECONDARIES_FIRST

MS = 1_000_000

REGION_ELECTIONS = RegionSimConfig(
    seed=0,
    nodes=3,
    steps=3000,
    regions=3,
    faults=("crash", "pause", "partition"),
    losses=0,
    pre_vote=False,
    read_mode=ReadOnlyOption.SAFE,
    nemesis=RegionNemesisParams(
        min_interval=20 * MS,
        max_interval=120 * MS,
        vote_crash=0.5,
        election_crash=0.1,
        max_down=200 * MS,
        max_pause=200 * MS,
    ),
)

REGION_FIGURE_8 = RegionSimConfig(
    seed=0,
    nodes=5,
    replicas=5,
    steps=5000,
    regions=1,
    clients=6,
    keys=3,
    max_size_per_msg=1,
    max_inflight_msgs=1,
    faults=(),
    scenario="figure-8",
    losses=0,
    read_mode=ReadOnlyOption.SAFE,
)

REGION_STALE_LEADER = RegionSimConfig(
    seed=0,
    nodes=3,
    steps=8000,
    regions=1,
    clients=6,
    keys=1,
    read_weight=0.5,
    client_timeout=100 * MS,
    hibernate=False,
    pre_vote=False,
    faults=("partition", "clock-skew"),
    clock_skew=0.05,
    losses=0,
    read_mode=ReadOnlyOption.LEASE_BASED,
    nemesis=RegionNemesisParams(
        min_interval=50 * MS,
        max_interval=150 * MS,
        max_partition=500 * MS,
        shapes=("isolate",),
        isolate_leaders=True,
    ),
)

TXN_CRASHES = RegionSimConfig(
    seed=0,
    nodes=3,
    steps=6000,
    faults=(),
    losses=0,
    workload=Workload.BANK,
    coordinator_crashes=0.5,
    crash_stages=("commit", "prewrote"),
)

TXN_STALE_READ = RegionSimConfig(
    seed=0,
    nodes=3,
    steps=6000,
    faults=(),
    losses=0,
    read_weight=0.5,
    workload=Workload.APPEND,
    coordinator_crashes=0.5,
    crash_stages=("answered",),
)

TXN_TSO = RegionSimConfig(
    seed=0,
    nodes=3,
    steps=6000,
    faults=(),
    losses=0,
    workload=Workload.BANK,
    tso_wall_skew_ms=1000,
    pd_crash_at=(400 * MS, 600 * MS),
    pd_crash_every=250 * MS,
)

TXN_FAULTS = RegionSimConfig(
    seed=0,
    nodes=4,
    steps=20_000,
    faults=REGION_FAULTS,
    losses=0,
    buggify=True,
    client_timeout=1000 * MS,
    workload=Workload.BANK,
    nemesis=RegionNemesisParams(
        min_interval=300 * MS,
        max_interval=1500 * MS,
        shapes=("halves", "isolate", "bridge", "one-way"),
    ),
)

REGION_SPLITS = RegionSimConfig(
    seed=0,
    nodes=3,
    steps=6000,
    regions=1,
    clients=20,
    keys=30,
    read_weight=0.3,
    faults=("delay", "pause"),
    losses=0,
    background_sync=True,
    read_mode=ReadOnlyOption.SAFE,
)

REGION_PROFILES: dict[str, RegionSimConfig] = {
    "region-elections": REGION_ELECTIONS,
    "region-figure-8": REGION_FIGURE_8,
    "region-stale-leader": REGION_STALE_LEADER,
    "txn-crashes": TXN_CRASHES,
    "txn-stale-read": TXN_STALE_READ,
    "txn-tso": TXN_TSO,
    "txn-faults": TXN_FAULTS,
    "region-splits": REGION_SPLITS,
}
"""Every multi-region profile by name."""

REGION_EXPOSES: dict[PlantedBug, str] = {
    PlantedBug.DOUBLE_VOTE: "region-elections",
    PlantedBug.UNSYNCED_VOTE: "region-elections",
    PlantedBug.NO_TRUNCATE: "region-figure-8",
    PlantedBug.COMMIT_OLD_TERM: "region-figure-8",
    PlantedBug.STALE_LEASE_READ: "region-stale-leader",
    PlantedBug.SPLIT_KEY_LEFT_BEHIND: "region-splits",
    PlantedBug.APPLY_OUT_OF_RANGE: "region-splits",
}
"""The profile that exposes each planted bug on the multi-region path."""

TXN_EXPOSES: dict[str, str] = {
    SECONDARIES_FIRST: "txn-crashes",
    READS_IGNORE_LOCKS: "txn-stale-read",
    TSO_BACKWARDS: "txn-tso",
}
"""The profile that exposes each planted bug of cross-region transactions."""
