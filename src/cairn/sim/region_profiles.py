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
"""

from __future__ import annotations

from cairn.raft.config import PlantedBug
from cairn.raft.types import ReadOnlyOption
from cairn.sim.region_nemesis import RegionNemesisParams
from cairn.sim.region_runner import RegionSimConfig

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
