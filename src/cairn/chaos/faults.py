"""The faults a chaos run injects, and the seeded schedule it injects them on.

A schedule is a list of `Planned` faults, one at a time, drawn in rounds (every kind
chosen once per round, in a seeded order): each starts at `at` seconds into
the run, lasts `duration` seconds (then is healed), and is followed by a quiet gap so the
cluster can show it recovered. The schedule depends only on the seed, the duration and
the faults chosen; which node a fault hits is decided when it starts (the leader is only
known then), from a random source seeded the same way, and recorded.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field


class FaultKind(enum.Enum):
    """One kind of fault; the value is its name on the command line."""

    KILL = "kill"
    """kill -9 one node (the leader half of the time), restart it after `duration`."""
    PAUSE = "pause"
    """SIGSTOP one node (the leader half of the time), SIGCONT after `duration`."""
    PARTITION = "partition"
    """A network partition: halves, isolate the leader, majority ring or one-way."""
    DELAY = "delay"
    """Every link of one node delayed by 20-200 ms (+ jitter) through the proxies."""
    LOSS = "loss"
    """10-40% of chunks on every link "lost" (held for a TCP retransmission timeout)."""
    STALL = "stall"
    """Every link of one node frozen for 0.5-2 s, then its connections reset."""
    CLOCK = "clock"
    """One node's clock runs 2-8% fast or slow."""
    FSYNC_ERROR = "fsync-error"
    """fsync fails (EIO, or ENOSPC: disk full) on one follower: it must stop (exit 1)."""
    SLOW_FSYNC = "slow-fsync"
    """Every fsync of one node takes 20-150 ms longer."""
    CORRUPT = "corrupt"
    """A stopped follower's data file gets a bit flip or is truncated: it must refuse to
    start; the runner then restores its pre-damage copy and restarts it."""
    POWER_LOSS = "power-loss"
    """kill -9 of every node at once, then a restart of all (see `cairn.runtime.plants`)."""
    SPLIT = "split"
    """A region is split (halfway through its slots) through the admin API."""
    MERGE = "merge"
    """A region is merged into its neighbour (replicas aligned first when they differ)."""
    MOVE = "move"
    """One replica of a region moves to a node that holds none (snapshot, promote, remove)."""
    TRANSFER = "transfer"
    """A region's leadership is handed to another voter."""
    DRAIN = "drain"
    """A node is drained (its replicas and leaders move off), then undrained."""
    PLACEMENT_KILL = "placement-kill"
    """kill -9 the placement group's leader (restarted after `duration`), once the other
    members' clocks were set behind (`cairn.chaos.tso_faults`)."""
    PLACEMENT_TRANSFER = "placement-transfer"
    """The placement group's leadership handed to another member whose clock was set
    behind first (`cairn.chaos.tso_faults`)."""


REGION_FAULTS = frozenset(
    {FaultKind.SPLIT, FaultKind.MERGE, FaultKind.MOVE, FaultKind.TRANSFER, FaultKind.DRAIN}
)
"""Faults asked of the placement driver (`cairn.chaos.region_faults`): they need its
admin API and several regions, which the runner provides when any is chosen."""
PLACEMENT_FAULTS = frozenset({FaultKind.PLACEMENT_KILL, FaultKind.PLACEMENT_TRANSFER})
"""Leader changes of the placement group, which runs the timestamp oracle (the `tso`
workload's faults, `cairn.chaos.tso_faults`); they need the admin API too."""
ALL_FAULTS = frozenset(FaultKind) - REGION_FAULTS - PLACEMENT_FAULTS
"""The node, network and disk faults (`--faults all`); region faults are `regions`,
placement leader changes `placement`."""
BASIC_FAULTS = frozenset({FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION})

_DURATIONS: dict[FaultKind, tuple[float, float]] = {
    FaultKind.KILL: (1.0, 4.0),
    FaultKind.PAUSE: (1.0, 4.0),
    FaultKind.PARTITION: (2.0, 6.0),
    FaultKind.DELAY: (2.0, 5.0),
    FaultKind.LOSS: (2.0, 5.0),
    FaultKind.STALL: (0.5, 2.0),
    FaultKind.CLOCK: (3.0, 8.0),
    FaultKind.FSYNC_ERROR: (0.0, 0.0),
    FaultKind.SLOW_FSYNC: (2.0, 5.0),
    FaultKind.CORRUPT: (0.0, 0.0),
    FaultKind.POWER_LOSS: (0.0, 0.0),
    # region faults: how long the runner waits for the operator before giving up
    FaultKind.SPLIT: (2.5, 4.0),
    FaultKind.MERGE: (4.0, 7.0),
    FaultKind.MOVE: (3.0, 6.0),
    FaultKind.TRANSFER: (1.5, 3.0),
    FaultKind.DRAIN: (4.0, 7.0),
    # placement faults: how long the old leader stays down, or the wait after a transfer
    FaultKind.PLACEMENT_KILL: (1.0, 3.0),
    FaultKind.PLACEMENT_TRANSFER: (0.5, 1.5),
}

LAG_WINDOW_S = 2.0
"""Seconds a placement fault slows the next leader's clock before the change."""

PARTITION_SHAPES = ("halves", "isolate-leader", "majority-ring", "one-way")


@dataclass(frozen=True, slots=True)
class Planned:
    """A fault in the schedule: what, when (seconds into the run) and for how long."""

    at: float
    kind: FaultKind
    duration: float
    shape: str = ""
    """The partition's shape, for PARTITION."""

    def describe(self) -> str:
        """One line, e.g. `t=12.0s partition(halves) for 3.1s`."""
        what = f"{self.kind.value}({self.shape})" if self.shape else self.kind.value
        return f"t={self.at:.1f}s {what} for {self.duration:.1f}s"


def schedule(
    seed: int, duration: float, faults: frozenset[FaultKind], warmup: float = 3.0
) -> list[Planned]:
    """The faults of a run, from its seed; the last one heals before `duration` - 3 s."""
    rng = random.Random(seed)
    kinds = sorted(faults, key=lambda k: k.value)
    plan: list[Planned] = []
    deck: list[FaultKind] = []
    t = warmup
    while kinds:
        if not deck:  # every kind once per round, in a fresh order each round
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck.pop()
        lo, hi = _DURATIONS[kind]
        length = round(rng.uniform(lo, hi), 2)
        shape = rng.choice(PARTITION_SHAPES) if kind is FaultKind.PARTITION else ""
        if t + length + _settle(kind) > duration - 3.0:
            break
        plan.append(Planned(round(t, 2), kind, length, shape))
        t += length + _settle(kind) + rng.uniform(1.0, 3.0)
    return plan


def _settle(kind: FaultKind) -> float:
    """Time a fault needs beyond its duration (restarts, checks)."""
    slow = {
        FaultKind.CORRUPT: 8.0,
        FaultKind.FSYNC_ERROR: 6.0,
        FaultKind.POWER_LOSS: 4.0,
        FaultKind.PLACEMENT_KILL: LAG_WINDOW_S,
        FaultKind.PLACEMENT_TRANSFER: LAG_WINDOW_S,
    }
    return slow.get(kind, 0.0)


@dataclass
class FaultRecord:
    """A fault as it happened: target, times (monotonic ns) and what was observed.

    `problems` are safety findings (a node that kept running on a failed disk, a node
    that started on a damaged log); `notes` are observations that are not anomalies.
    """

    kind: FaultKind
    target: str
    start: int
    end: int = 0
    detail: str = ""
    outcome: str = ""
    """For a region fault: how its operator ended (`succeeded`, `cancelled`, `timed-out`,
    `running` when the runner stopped waiting, `refused`); empty for the others."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the output."""
        text = f"{self.kind.value} {self.target}"
        if self.detail:
            text += f": {self.detail}"
        return text
