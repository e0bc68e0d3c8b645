"""The last minutes of a node's figures, for the dashboard's charts (`GET /v1/history`).

Theory of operation. Once a second (`HistorySettings.interval_s`) the admin server reads
the node's cumulative counters into a `Reading`: commands served, the latency histogram
of every command merged into one, each hosted region's applied index, and the Raft commit
lag of every node as seen by this node where it leads a region. `Sample.between` turns two
consecutive readings into one `Sample` of rates and interval percentiles, and `History`
keeps the newest `capacity` samples in a ring (five minutes by default), so the memory is
bounded whatever the uptime. A counter that went backwards (CONFIG RESETSTAT, a replica
recreated) is read as a restart from zero, never as a negative rate.

The lag is what the dashboard calls "Raft commit lag per node": for every region this node
leads, the leader's commit index minus the node's matched index, the largest over those
regions (0 for this node itself). Nodes this node leads nothing for are absent: ask the
dashboard of their leaders. Throughput and latency are this node's own: the commands its
clients sent it, timed from arrival to reply (see `cairn.runtime.command_stats`).

`read_node` is the only part that touches a running node; the rest is plain data, tested
without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.runtime.command_stats import Histogram

if TYPE_CHECKING:
    from cairn.runtime.node import Node

log = logging.getLogger("cairn.admin")

PERCENTILES = (50.0, 99.0, 99.9)
"""The latency percentiles each sample carries."""
MAX_CAPACITY = 3600
"""The most samples a history may keep (an hour at one a second)."""


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """How often to sample and how many samples to keep."""

    interval_s: float = 1.0
    capacity: int = 300

    def __post_init__(self) -> None:
        if not 0.05 <= self.interval_s <= 60:
            raise ValueError(f"interval_s must be in [0.05, 60], got {self.interval_s}")
        if not 2 <= self.capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be in [2, {MAX_CAPACITY}], got {self.capacity}")


@dataclass(frozen=True, slots=True)
class Reading:
    """A node's cumulative counters at one moment (`read_node`)."""

    monotonic_s: float
    wall_ms: int
    commands: int
    latency: Mapping[int, int]
    """The merged latency histogram's bucket counts (`Histogram.counts`)."""
    applied: Mapping[int, int]
    """Each hosted region's applied index."""
    lag: Mapping[int, int]
    """Node id -> entries behind the commit index, where this node leads (module doc)."""
    rss_bytes: int | None = None
    disk: DiskUse | None = None


@dataclass(frozen=True, slots=True)
class DiskUse:
    """What the node's data takes on disk, and its file system's room."""

    data_bytes: int
    """Blocks allocated to the files under the data directory (LMDB files are sparse)."""
    free_bytes: int
    total_bytes: int

    def to_json(self) -> dict[str, int]:
        """The `disk` of a sample."""
        return {"data": self.data_bytes, "free": self.free_bytes, "total": self.total_bytes}


@dataclass(frozen=True, slots=True)
class Sample:
    """What happened between two readings: rates per second and interval percentiles."""

    wall_ms: int
    ops_per_s: float
    latency_us: tuple[float | None, ...]
    """The `PERCENTILES` of the commands timed in the interval (None: none timed)."""
    lag: Mapping[int, int]
    region_writes_per_s: Mapping[int, float]
    """Entries applied per second, by region: the region's write rate."""
    rss_bytes: int | None = None
    disk: DiskUse | None = None

    @classmethod
    def between(cls, before: Reading, after: Reading) -> Sample:
        """The sample of the interval from `before` to `after`."""
        seconds = max(after.monotonic_s - before.monotonic_s, 1e-6)
        writes = {
            region: _growth(before.applied.get(region, 0), applied) / seconds
            for region, applied in after.applied.items()
        }
        return cls(
            wall_ms=after.wall_ms,
            ops_per_s=_growth(before.commands, after.commands) / seconds,
            latency_us=_interval_percentiles(before.latency, after.latency),
            lag=dict(after.lag),
            region_writes_per_s=writes,
            rss_bytes=after.rss_bytes,
            disk=after.disk,
        )

    def to_json(self) -> dict[str, Any]:
        """One element of `GET /v1/history`'s samples."""
        return {
            "time_ms": self.wall_ms,
            "ops_per_s": round(self.ops_per_s, 2),
            "latency_us": {
                _label(p): None if v is None else round(v, 1)
                for p, v in zip(PERCENTILES, self.latency_us, strict=True)
            },
            "commit_lag": {str(n): lag for n, lag in sorted(self.lag.items())},
            "rss_bytes": self.rss_bytes,
            "disk": None if self.disk is None else self.disk.to_json(),
        }


def _label(p: float) -> str:
    return "p" + f"{p:f}".rstrip("0").rstrip(".")


def _growth(before: int, after: int) -> int:
    """How much a counter grew; a counter that went backwards restarted from zero."""
    return after - before if after >= before else after


def _interval_percentiles(
    before: Mapping[int, int], after: Mapping[int, int]
) -> tuple[float | None, ...]:
    """The percentiles of the values counted between two histogram readings (us)."""
    interval = Histogram()
    restarted = any(after.get(i, 0) < n for i, n in before.items())
    for index, count in after.items():
        grown = count if restarted else count - before.get(index, 0)
        if grown > 0:
            interval.counts[index] = grown
            interval.total += grown
    if not interval.total:
        return tuple(None for _ in PERCENTILES)
    return tuple(interval.percentile(p) / 1000 for p in PERCENTILES)


@dataclass
class History:
    """The newest samples of one node, in a ring of `settings.capacity`: a sample holds a
    few numbers and one per node (the lag), so the ring's size is bounded by the capacity
    and the cluster's size, not by the number of regions."""

    node_id: int
    settings: HistorySettings = field(default_factory=HistorySettings)
    samples: deque[Sample] = field(init=False)
    region_writes: Mapping[int, float] = field(default_factory=dict, init=False)
    """The newest sample's write rate by region (kept once, not per sample: a node may host
    many regions)."""
    _last: Reading | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.settings.capacity)

    def add(self, reading: Reading) -> Sample | None:
        """Take a reading; the sample it completes (None for the first reading)."""
        last, self._last = self._last, reading
        if last is None:
            return None
        sample = Sample.between(last, reading)
        self.region_writes = sample.region_writes_per_s
        self.samples.append(replace(sample, region_writes_per_s={}))
        return sample

    def to_json(self, since_ms: int = 0) -> dict[str, Any]:
        """`GET /v1/history`: the samples newer than `since_ms`, oldest first."""
        return {
            "node_id": self.node_id,
            "interval_ms": int(self.settings.interval_s * 1000),
            "capacity": self.settings.capacity,
            "percentiles": [_label(p) for p in PERCENTILES],
            "samples": [s.to_json() for s in self.samples if s.wall_ms > since_ms],
            "region_writes_per_s": {
                str(r): round(w, 2) for r, w in sorted(self.region_writes.items())
            },
        }


Reader = Callable[[], Reading | None]
"""Reads the node's counters now (None: the node cannot be read right now)."""


@dataclass(frozen=True, slots=True)
class HistoryFeed:
    """A node's history ring and how to read the node for it (`AdminServer(history=)`)."""

    history: History
    read: Reader


async def sample_forever(history: History, read: Reader) -> None:
    """Add a reading to `history` every interval until cancelled; a failed reading is
    logged once and skipped (the chart shows a gap, the node keeps serving)."""
    failed = False
    while True:
        try:
            reading = read()
        except Exception:
            if not failed:
                log.exception("the dashboard history could not read the node")
            failed, reading = True, None
        if reading is not None:
            history.add(reading)
        await asyncio.sleep(history.settings.interval_s)


# -- reading a running node -------------------------------------------------------------


def read_node(node: Node) -> Reading | None:
    """The counters of `node` now (None while it starts or stops)."""
    if node.stopping or not hasattr(node, "host"):
        return None
    stats = node.context.recorder.stats
    merged: dict[int, int] = {}
    for stat in stats.commands.values():
        for index, count in stat.histogram.counts.items():
            merged[index] = merged.get(index, 0) + count
    applied: dict[int, int] = {}
    lag: dict[int, int] = {node.config.node_id: 0}
    for region_id, peer in node.host.peers.items():
        status = peer.replica.raw.status()
        applied[region_id] = status.applied
        for raft_id, progress in status.progress.items():
            found = peer.region.peer(raft_id)
            owner = found.node_id if found is not None else node.host.peer_nodes.get(raft_id)
            if owner is not None and owner != node.config.node_id:
                lag[owner] = max(lag.get(owner, 0), max(status.commit - progress.match, 0))
    return Reading(
        monotonic_s=time.monotonic(),
        wall_ms=int(time.time() * 1000),
        commands=stats.total_commands,
        latency=merged,
        applied=applied,
        lag=lag,
        rss_bytes=_rss_bytes(),
        disk=disk_use(node.config.data_dir),
    )


_STATM = Path("/proc/self/statm")


def _rss_bytes() -> int | None:
    """This process's resident memory (Linux), or None where it cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(_STATM.read_text().split()[1]) * resource.getpagesize()
    return None


def node_feed(node: Node, settings: HistorySettings | None = None) -> HistoryFeed:
    """The history of `node` and its reader, for `AdminServer(history=...)`."""
    history = History(node.config.node_id, settings or HistorySettings())
    return HistoryFeed(history, lambda: read_node(node))


MAX_DATA_FILES = 10_000
"""`disk_use` stops counting after this many directory entries (a bound on its cost)."""


def disk_use(data_dir: Path) -> DiskUse | None:
    """The disk used under `data_dir` and its file system's room (None if unreadable)."""
    try:
        usage = shutil.disk_usage(data_dir)
    except OSError:
        return None
    total, seen, pending = 0, 0, [data_dir]
    while pending and seen < MAX_DATA_FILES:
        with contextlib.suppress(OSError), os.scandir(pending.pop()) as entries:
            for entry in entries:
                seen += 1
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    return DiskUse(total, usage.free, usage.total)
