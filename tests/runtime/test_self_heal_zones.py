"""Zones on real nodes: four nodes labelled with zones a, a, b and c found six regions on
all four; the placement driver trims each to 3 voters, one per zone, never two in zone
a, and a node of zone a killed for good is replaced by the other node of zone a."""

from __future__ import annotations

import time
from pathlib import Path

from self_heal_support import WriteLoad, healing_cluster, settled, voters, wait_for

from cairn.admin.views import RegionView

ZONES = {1: "a", 2: "a", 3: "b", 4: "c"}


def one_per_zone(regions: list[RegionView], live: set[int]) -> bool:
    return settled(regions, live) and all(
        sorted(ZONES[n] for n in voters(r)) == ["a", "b", "c"] for r in regions
    )


def test_replicas_spread_over_zones_and_are_repaired_within_them(tmp_path: Path) -> None:
    labels = {n: f'labels = {{ zone = "{z}" }}' for n, z in ZONES.items()}
    with healing_cluster(tmp_path, nodes=4, node_settings=labels) as cluster:
        regions = wait_for(cluster, lambda rs: one_per_zone(rs, {1, 2, 3, 4}), 30)
        victim = next(n for n in (1, 2) if any(n in voters(r) for r in regions))
        load = WriteLoad(cluster, "zones")
        load.start()
        try:
            time.sleep(0.5)
            cluster.kill(victim)
            live = {1, 2, 3, 4} - {victim}
            started = time.monotonic()
            wait_for(cluster, lambda rs: one_per_zone(rs, live), 45)
            print(f"zone a repaired on its other node in {time.monotonic() - started:.1f} s")
        finally:
            load.stop()
        load.verify(20)
