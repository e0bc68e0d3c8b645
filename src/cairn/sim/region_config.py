"""What a multi-region simulation is asked (`RegionSimConfig`) and what it answers
(`RegionSimResult`), with the names of the faults it can inject.

Everything a run does that the config does not fix is drawn from its seed
(`cairn.sim.region_runner`), so a config is the whole description of a run: the same
config always gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from cairn.check.history import Op
from cairn.check.linearizability import Verdict
from cairn.raft.config import PlantedBug
from cairn.raft.types import ReadOnlyOption
from cairn.sim.invariants import Violation
from cairn.sim.region_nemesis import HOOKED, RegionNemesisParams
from cairn.sim.region_scenarios import SCENARIOS
from cairn.sim.txn_client import CRASH_STAGES, TXN_PLANTS
from cairn.sim.workloads import Workload, WorkloadVerdict

__all__ = [
    "BASE_FAULTS",
    "EVERY_FAULT",
    "MS",
    "REGION_FAULTS",
    "WORKLOAD_KEYS",
    "RegionSimConfig",
    "RegionSimResult",
    "drawn",
    "first_free_id",
    "workload_key",
]

MS = 1_000_000
"""One millisecond of virtual time, in ns."""
WORKLOAD_KEYS = {
    Workload.QUEUE: "q0",
    Workload.STREAM: "s0",
    Workload.APPEND: "la",
    Workload.BANK: "bank",
}
"""The one key a queue or stream run works on (append, bank: the prefix of their keys,
which lie in several regions)."""

REGION_FAULTS = (
    "drop",
    "duplicate",
    "delay",
    "reorder",
    "partition",
    "crash",
    "pause",
    "clock-skew",
    "transfer",
    "power-loss",
)
"""Every fault kind a multi-region run can inject, besides node loss (`losses`). The
names are `cairn sim --faults`'s; `power-loss` crashes every node at once."""
BASE_FAULTS = ("drop", "duplicate", "delay", "reorder", "partition", "crash", "pause", "clock-skew")
"""A `RegionSimConfig`'s default: the faults multi-region runs had before they took
`--faults` (the CI sweep's); `EVERY_FAULT` is what `cairn sim --regions` runs."""


@dataclass(frozen=True, slots=True)
class RegionSimConfig:
    """One multi-region run's parameters; everything else is drawn from `seed`."""

    seed: int
    nodes: int = 4
    steps: int = 6000
    clients: int = 4
    keys: int = 10
    replicas: int = 3
    regions: int = 3
    """Regions founded at the start (cut at slot boundaries), before any split or merge."""
    faults: tuple[str, ...] = BASE_FAULTS
    planted: frozenset[PlantedBug] = frozenset()
    """Deliberate Raft bugs, switched on in every region's group and the placement group."""
    read_mode: ReadOnlyOption | None = None
    """ReadIndex (`SAFE`) or lease reads for every group (None: each seed draws one)."""
    buggify: bool = False
    pre_vote: bool | None = None
    """Force Raft's pre-vote on or off in every group (None: each seed draws it)."""
    max_size_per_msg: int | None = None
    """Force Raft's message size limit (None: each seed draws 64 bytes or 1 MiB)."""
    max_inflight_msgs: int | None = None
    """Force Raft's in-flight append limit (None: Raft's default)."""
    scenario: str = ""
    """A scripted fault sequence against region 1 (`cairn.sim.region_scenarios`)."""
    hibernate: bool | None = None
    """Force idle regions' hibernation on or off (None: each seed draws it)."""
    read_weight: float | None = None
    """The clients' share of reads (None: each seed draws one)."""
    client_timeout: int = 400 * MS
    """How long a client waits for a reply (ns) before recording the outcome unknown."""
    nemesis: RegionNemesisParams = RegionNemesisParams()  # noqa: RUF009 (frozen)
    """Timing of the scheduled and hooked faults (`losses` below overrides its own)."""
    losses: int = 1
    """Nodes lost for good (each replaced by a new node)."""
    clock_skew: float = 0.01
    converge_within: int = 20_000 * MS
    """Virtual time allowed, after the faults stop, to reach the declared placement."""
    check_linearizability: bool = True
    background_sync: bool = False
    """Nodes fsync in the background (`BackgroundSyncDisk`), as real nodes do."""
    keep_history: bool = False
    keep_trace: bool = False
    workload: Workload = Workload.REGISTER
    """What clients do: registers (checked for linearizability), or a queue, a stream,
    list-append or bank transactions (`cairn.sim.workloads`, checked against a final
    read of the applied state of the keys' region leaders)."""
    workload_key: str = ""
    """The workload's key or its keys' prefix ("": `WORKLOAD_KEYS`'); a hash tag such as
    "{bank}" keeps a transaction workload's keys in one region (1PC transactions)."""
    txn_plants: frozenset[str] = frozenset()
    """Planted bugs of cross-region transactions (`cairn.sim.txn_client.TXN_PLANTS`)."""
    coordinator_crashes: float = 0.05
    """The chance that a cross-region transaction's coordinator dies mid-way."""
    crash_stages: tuple[str, ...] = CRASH_STAGES
    """Where a dying coordinator dies (drawn among these: `CRASH_STAGES`)."""
    tso_wall_skew_ms: int = 0
    """Each placement member's wall clock is off by up to this much (the TSO's time)."""
    pd_crash_at: tuple[int, int] | None = None
    """Crash the placement group's leader once, at a time drawn in this window (ns), even
    without crash faults (None: once at `region_faults.PD_CRASH_AFTER` when crashes are
    on)."""
    pd_crash_every: int = 0
    """With `pd_crash_at`: crash the placement group's leader again this often (ns; 0:
    once), until the faults stop."""

    def __post_init__(self) -> None:
        if self.nodes < self.replicas or self.replicas < 1:
            raise ValueError(f"need nodes >= replicas >= 1, not {self.nodes} and {self.replicas}")
        if self.scenario not in ("", *SCENARIOS):
            raise ValueError(f"unknown scenario {self.scenario!r}")
        unknown = set(self.faults) - set(REGION_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        if not self.crash_stages or not set(self.crash_stages) <= set(CRASH_STAGES):
            raise ValueError(f"crash stages must be among {CRASH_STAGES}")
        if not self.txn_plants <= set(TXN_PLANTS):
            raise ValueError(f"unknown plants {sorted(self.txn_plants - set(TXN_PLANTS))}")


EVERY_FAULT = RegionSimConfig(seed=0, faults=REGION_FAULTS, buggify=True, nemesis=HOOKED)
"""What `cairn sim --regions` runs by default: every fault kind, crashes at the hooked
moments, one-way partitions, and buggify on."""


def first_free_id(config: RegionSimConfig) -> int:
    """The first id the placement driver may hand out: the founding layout's are below."""
    return 1 + config.regions * (1 + config.replicas)


T = TypeVar("T")


def drawn(forced: T | None, draw: T) -> T:
    """`forced` (a knob the config sets) unless it is None, else `draw` (the draw happens
    either way, so forcing one knob does not shift the choices drawn after it)."""
    return draw if forced is None else forced


def workload_key(config: RegionSimConfig) -> str:
    """The key (queue, stream) or the keys' prefix (append, bank) of a workload's run."""
    return config.workload_key or WORKLOAD_KEYS[config.workload]


@dataclass(frozen=True, slots=True)
class RegionSimResult:
    """What one multi-region run did and whether it stayed safe and converged."""

    seed: int
    steps: int
    virtual_time: int
    ops_ok: int
    ops_failed: int
    ops_unknown: int
    stale_refusals: int
    regions: int
    splits: int
    merges: int
    moves: int
    faults: dict[str, int]
    converged_after: int | None
    """Virtual ns from the end of the faults to convergence (None: it did not converge)."""
    violation: Violation | None
    verdict: Verdict | None
    digest: str
    history: tuple[Op, ...] = ()
    trace: tuple[str, ...] = ()
    placement: dict[str, int] = field(default_factory=dict)
    """What the agents did: requests sent, served, refused, timed out; stale peers
    destroyed; merge commits proposed."""
    read_mode: ReadOnlyOption = ReadOnlyOption.SAFE
    buggified: tuple[str, ...] = ()
    """The buggify sites that were switched on in this run."""
    buggify_fired: dict[str, int] = field(default_factory=dict)
    """How often each buggify site took its odd path."""
    workload: Workload = Workload.REGISTER
    workload_verdict: WorkloadVerdict | None = None
    """A workload run's check (None: a register run, or a violation stopped it)."""
    transactions: dict[str, int] = field(default_factory=dict)
    """What a transaction workload's transactions did (`TxnStats`: cross-region and
    single-region ones, coordinator crashes, locks met and resolved)."""

    @property
    def failure(self) -> str | None:
        """The first broken property in words, or None when the run was safe and converged."""
        if self.violation is not None:
            return str(self.violation)
        if self.verdict is not None and not self.verdict.ok:
            return f"linearizability (key {self.verdict.key!r}): {self.verdict.explanation}"
        if self.workload_verdict is not None and self.workload_verdict.failure is not None:
            return f"{self.workload.value} check: {self.workload_verdict.failure}"
        return None

    @property
    def linearizable(self) -> bool | None:
        """The checker's answer: True, False, or None when it was not run or gave up."""
        if self.verdict is None or self.verdict.unknown:
            return None
        return self.verdict.ok

    @property
    def ok(self) -> bool:
        """Safe, linearizable (or not checked) and converged."""
        return self.failure is None
