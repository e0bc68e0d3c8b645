"""Splits and merges decided by the placement driver in a real cluster: regions written
past `regions.split_size_bytes` are split at slot boundaries under a RedisCluster write
load; once the keys are deleted the small neighbours merge back. Every slot stays
covered by exactly one region and no acknowledged write is lost."""

from __future__ import annotations

import time
from pathlib import Path

from self_heal_support import WriteLoad, healing_cluster, settled, wait_for

from cairn.admin.views import RegionView

SPLIT_BYTES = 24 << 10
REGIONS = {
    "split_size_bytes": SPLIT_BYTES,
    "split_write_bytes_per_s": 64 << 20,
    "merge_size_bytes": 8 << 10,
    "merge_keys": 50,
    "split_merge_interval_s": 1,
}


def covered_once(regions: list[RegionView]) -> bool:
    """Whether the regions' ranges tile the key space with no gap and no overlap."""
    spans = sorted((r.start, r.end) for r in regions)
    ends = [b""] + [end for _, end in spans]
    return all(start == ends[i] for i, (start, _) in enumerate(spans)) and ends[-1] == b""


def test_regions_split_under_load_and_merge_when_emptied(tmp_path: Path) -> None:
    with healing_cluster(
        tmp_path, nodes=3, settings={"initial_regions": 1}, regions=REGIONS
    ) as cluster:
        load = WriteLoad(cluster, "split", value_size=200)
        load.start()
        try:
            started = time.monotonic()
            regions = wait_for(
                cluster, lambda rs: len(rs) >= 4 and settled(rs, {1, 2, 3}) and covered_once(rs), 90
            )
            print(f"split into {len(regions)} regions in {time.monotonic() - started:.1f} s")
        finally:
            load.stop()
        load.check()
        most = len(wait_for(cluster, bool, 5))
        started = time.monotonic()
        rc = load.client()
        try:
            for key in sorted(load.acked):
                rc.delete(key)
        finally:
            rc.close()
        merged = wait_for(
            cluster,
            lambda rs: len(rs) <= most - 2 and settled(rs, {1, 2, 3}) and covered_once(rs),
            90,
        )
        took = time.monotonic() - started
        print(f"{len(load.acked)} keys deleted, {len(merged)} regions left after {took:.1f} s")
        rc = load.client()
        try:
            assert all(rc.get(key) is None for key in sorted(load.acked)[::20])
        finally:
            rc.close()
        again = WriteLoad(cluster, "after")
        again.start()
        time.sleep(2)
        again.stop()
        again.verify(20)
