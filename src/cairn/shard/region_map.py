"""The routing table: which region holds a key, kept ordered by range.

Every node keeps one (its view of the cluster, fed by its own replicas and by the placement
driver), and so does the placement driver itself. Descriptions arrive out of order and from
stale sources, so `update` keeps, for any part of the keyspace, the description with the
newer epoch version and drops what it overlaps (PD's region cache does the same).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from cairn.meta.region import Region, range_key


class RegionMap:
    """Regions ordered by start key; lookups by range key are a binary search."""

    def __init__(self, regions: list[Region] | tuple[Region, ...] = ()) -> None:
        self._starts: list[bytes] = []
        self._regions: list[Region] = []
        self._by_id: dict[int, Region] = {}
        for region in regions:
            self.update(region)

    def __len__(self) -> int:
        return len(self._regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(list(self._regions))

    def get(self, region_id: int) -> Region | None:
        """The region with id `region_id`, if known."""
        return self._by_id.get(region_id)

    def locate(self, rkey: bytes) -> Region | None:
        """The region holding range key `rkey`, if one is known."""
        i = bisect.bisect_right(self._starts, rkey) - 1
        if i < 0:
            return None
        region = self._regions[i]
        return region if region.contains(rkey) else None

    def locate_key(self, key: bytes) -> Region | None:
        """The region holding Redis key `key`, if one is known."""
        return self.locate(range_key(key))

    def overlapping(self, start: bytes, end: bytes) -> list[Region]:
        """The known regions that share range keys with ``[start, end)`` (`b""` end: open)."""
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        found = []
        for region in self._regions[i:]:
            if end and region.start >= end:
                break
            if not region.end or region.end > start:
                found.append(region)
        return found

    def update(self, region: Region) -> bool:
        """Adopt `region` unless something it overlaps is newer; True when adopted.

        An equal version with a different range is refused too: two descriptions of the same
        version can only disagree when one of them is wrong, and the one already held has
        been checked against its neighbours.
        """
        old = self._by_id.get(region.id)
        if old is not None and region.epoch.is_stale(old.epoch):
            return False
        overlaps = [r for r in self.overlapping(region.start, region.end) if r.id != region.id]
        if any(r.epoch.version >= region.epoch.version for r in overlaps):
            return False
        for r in [*overlaps, *([old] if old is not None else [])]:
            self._remove(r)
        i = bisect.bisect_left(self._starts, region.start)
        self._starts.insert(i, region.start)
        self._regions.insert(i, region)
        self._by_id[region.id] = region
        return True

    def remove(self, region_id: int) -> Region | None:
        """Forget region `region_id` (it merged away or its replica here was removed)."""
        region = self._by_id.get(region_id)
        if region is not None:
            self._remove(region)
        return region

    def _remove(self, region: Region) -> None:
        i = bisect.bisect_left(self._starts, region.start)
        while self._regions[i].id != region.id:
            i += 1
        del self._starts[i]
        del self._regions[i]
        del self._by_id[region.id]

    def gaps(self) -> list[tuple[bytes, bytes]]:
        """The ranges no known region covers (empty when the map covers the keyspace)."""
        gaps, at = [], b""
        for region in self._regions:
            if region.start != at:
                gaps.append((at, region.start))
            at = region.end
            if not at:
                return gaps
        gaps.append((at, b""))
        return gaps
