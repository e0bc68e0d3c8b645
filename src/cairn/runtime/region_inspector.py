"""`StoreRegionInspector`: what a real node's region data tells the placement driver.

Theory of operation. The placement agent asks, for every region the node leads, for a
heartbeat (`report`) and, when the driver wants the region split, for a key to cut it at
(`split_key`). Both are answered from the region's `StoreMachine` on the shared keyspace
without walking the region:

* **keys**: the region's count record, O(1);
* **size**: keys times the mean size of a sample of up to `SAMPLE_RECORDS` metadata
  records (key + metadata value) read from one seek at the start of the region. The
  estimate ignores the field records of hashes, sets and streams and is biased when the
  first keys differ from the rest; it costs one short cursor walk, and the driver only
  compares it to thresholds far apart (split far above merge);
* **write load**: the bytes of the log entries applied since the previous report over
  the seconds between them, read from the leader's in-memory log (O(entries since the
  last report), each counted once); entries already compacted away are counted at the
  mean size of those seen;
* **split key**: from the per-slot count records (at most 16,384, never the keys): the
  slot boundary inside the region nearest the middle of its keys. Only when the slot in
  the middle alone holds more than `big_slot_keys` keys is the cut made inside it, at
  its median key (a walk of that one slot's keys up to the median). None when no cut
  leaves keys on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cairn.meta.region import Region, slot_bound
from cairn.placement.model import RegionReport
from cairn.raft.errors import CompactedError
from cairn.shard.host import RegionPeer
from cairn.store.layout import decode_slot, decode_u64, slot_start
from cairn.store.machine import StoreMachine

SAMPLE_RECORDS = 32
"""How many metadata records the size estimate samples."""
BIG_SLOT_KEYS = 10_000
"""A slot holding more keys than this may be cut inside (a split at its median key)."""
PENDING_LAG = 10
"""A follower this many entries behind the leader's commit is reported pending."""
_PAGE = 1024


@dataclass(slots=True)
class _Load:
    """The write load seen at one region's previous report."""

    at: float
    index: int
    bytes_seen: int = 0
    entries_seen: int = 0


@dataclass(slots=True)
class StoreRegionInspector:
    """The `RegionInspector` (cairn.placement.agent) of regions held in `StoreMachine`s.

    `machines` maps a region id to its machine (the node's own dict); `clock` gives
    seconds (monotonic) for the write rate.
    """

    machines: Mapping[int, StoreMachine]
    clock: Callable[[], float]
    big_slot_keys: int = BIG_SLOT_KEYS
    _loads: dict[int, _Load] = field(default_factory=dict)

    def report(self, peer: RegionPeer) -> RegionReport:
        """The region heartbeat of leader `peer` (see the module docstring)."""
        machine = self.machines[peer.region_id]
        keys = machine.key_count()
        return RegionReport(
            peer.region,
            peer.peer_id,
            approximate_size=estimate_size(machine, keys),
            approximate_keys=keys,
            write_bytes_per_s=self._write_rate(peer),
            pending_peers=_pending(peer),
            term=peer.replica.term,
        )

    def split_key(self, peer: RegionPeer) -> bytes | None:
        """Where leader `peer` would cut its region (see `split_key_of`)."""
        machine = self.machines.get(peer.region_id)
        if machine is None:
            return None
        return split_key_of(machine, peer.region, self.big_slot_keys)

    def _write_rate(self, peer: RegionPeer) -> int:
        """Bytes per second applied since the previous report (0 at the first)."""
        now, applied = self.clock(), peer.replica.applied
        last = self._loads.get(peer.region_id)
        self._loads[peer.region_id] = load = _Load(now, applied)
        if last is None or applied <= last.index or now <= last.at:
            return 0
        written, counted = _entry_bytes(peer, last.index + 1, applied + 1)
        missing = applied - last.index - counted
        if missing > 0:
            seen = last.entries_seen + counted
            mean = (last.bytes_seen + written) // seen if seen else 0
            written += missing * mean
        load.bytes_seen, load.entries_seen = last.bytes_seen + written, last.entries_seen + counted
        return int(written / (now - last.at))


def _entry_bytes(peer: RegionPeer, lo: int, hi: int) -> tuple[int, int]:
    """(bytes, count) of the log entries in [lo, hi) still in the leader's memory."""
    storage = peer.replica.storage
    lo = max(lo, storage.first_index())
    if lo >= hi:
        return 0, 0
    try:
        entries = storage.entries(lo, hi)
    except CompactedError:
        return 0, 0
    return sum(len(e.data) for e in entries), len(entries)


def _pending(peer: RegionPeer) -> tuple[int, ...]:
    raw = peer.replica.raw
    behind = raw.log.committed - PENDING_LAG
    matches = raw.peer_matches()
    return tuple(sorted(i for i, match in matches.items() if i != peer.peer_id and match < behind))


def estimate_size(machine: StoreMachine, keys: int) -> int:
    """`keys` times the mean size of the first `SAMPLE_RECORDS` metadata records."""
    if keys <= 0:
        return 0
    lo, hi = machine.scope.meta_bounds()
    sample = machine.keyspace.scan(lo, hi, SAMPLE_RECORDS)
    if not sample:
        return 0
    total = sum(len(k) + len(v) for k, v in sample)
    return keys * total // len(sample)


def slot_counts(machine: StoreMachine) -> list[tuple[int, int]]:
    """(slot, keys) of every non-empty slot of a region's machine, in slot order."""
    bounds = machine.scope.slot_count_bounds()
    if bounds is None:
        return []
    rows = machine.keyspace.scan(*bounds)
    return [(decode_slot(key[-2:]), decode_u64(value)) for key, value in rows]


def split_key_of(machine: StoreMachine, region: Region, big_slot_keys: int) -> bytes | None:
    """The range key to cut `region` at: the slot boundary nearest the middle of its keys
    by the per-slot counts, or the median key of the middle slot when that slot alone
    holds more than `big_slot_keys`; None when no cut leaves keys on both sides."""
    counts = slot_counts(machine)
    total = sum(n for _, n in counts)
    if total < 2:
        return None
    before, mid = 0, 0
    while 2 * (before + counts[mid][1]) < total:
        before += counts[mid][1]
        mid += 1
    slot, n = counts[mid]
    if n > big_slot_keys:
        inside = _median_key(machine, region, slot, n)
        if inside is not None:
            return inside
    candidates = [
        (abs(2 * before - total), slot_bound(slot)),
        (abs(2 * (before + n) - total), slot_bound(slot + 1)),
    ]
    for _, at in sorted(candidates):
        if _strictly_inside(region, at) and 0 < _left_of(counts, at) < total:
            return at
    return None


def _left_of(counts: list[tuple[int, int]], at: bytes) -> int:
    cut = decode_slot(at) if at else 1 << 16
    return sum(n for s, n in counts if s < cut)


def _strictly_inside(region: Region, at: bytes) -> bool:
    return bool(at) and region.start < at and (not region.end or at < region.end)


def _median_key(machine: StoreMachine, region: Region, slot: int, count: int) -> bytes | None:
    """The range key of the median key of `slot` within the region (None when it is the
    region's first key, where no cut can be made)."""
    lo, hi = machine.scope.meta_bounds()
    pos = max(lo, slot_start(slot))
    end = min(hi, slot_start(slot + 1))
    skip = count // 2
    while rows := machine.keyspace.scan(pos, end, min(_PAGE, skip + 1)):
        if skip < len(rows):
            at = rows[skip][0][1:]  # an M record's key is "M" + its range key
            return at if _strictly_inside(region, at) else None
        skip -= len(rows)
        pos = rows[-1][0] + b"\x00"
    return None
