"""What group commit buys a multi-raft node: write throughput of 1 region vs 16 regions.

Run: `python bench/lmdb_regions.py [--dir DIR] [--seconds S] [--batch N] [--value-size B]`.
Each round every region appends a Ready batch of `batch` entries of `value-size` bytes
(plus a hard state) to its log in one `NodeStore`, and the round ends durable. Three ways:

- 1 region: one batch and one fsync per round (the single-group node);
- 16 regions, group commit: the 16 batches in one transaction, one fsync (`write_many`);
- 16 regions, one by one: each region's batch in its own transaction and fsync.

It prints rounds/s, fsyncs/s, entries/s and the p50/p99 round latency. Put `--dir` on the
disk the node will use: the fsync cost is the whole story.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cairn.env import LogBatch
from cairn.meta.region import Region, slot_bound
from cairn.raft.types import ConfState, Entry, HardState
from cairn.storage import LmdbOptions
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.storage.region_meta import RegionLocalState

MAP_SIZE = 4 << 30
TERM = RAFT_INIT_INDEX


def open_node(path: Path, regions: int) -> NodeStore:
    """A node hosting `regions` regions splitting the slots evenly, each founded at index 5."""
    node = NodeStore.open(path, 1, "bench", LmdbOptions(map_size=MAP_SIZE))
    width = 16384 // regions
    with node.env.write() as wtx:
        for rid in range(1, regions + 1):
            end = 16384 if rid == regions else rid * width
            region = Region(rid, slot_bound((rid - 1) * width), slot_bound(end))
            node.stage_create(wtx, RegionLocalState(rid, region=region), conf_state=ConfState((1,)))
    node.env.sync()
    return node


def run(path: Path, regions: int, group: bool, args: argparse.Namespace) -> str:
    """One line of figures for one way of writing."""
    node = open_node(path, regions)
    payload = b"v" * args.value_size
    index, latencies = RAFT_INIT_INDEX, []
    deadline = time.perf_counter() + args.seconds
    try:
        while time.perf_counter() < deadline:
            ents = tuple(Entry(TERM, index + i, data=payload) for i in range(1, args.batch + 1))
            index += args.batch
            batch = LogBatch(entries=ents, hard_state=HardState(TERM, 1, index))
            batches = [(rid, batch) for rid in range(1, regions + 1)]
            start = time.perf_counter()
            if group:
                node.write_many(batches, sync=True)
            else:
                for rid, one in batches:
                    node.store(rid).write(one, sync=True)
            latencies.append(time.perf_counter() - start)
    finally:
        node.close()
    total = sum(latencies)
    rounds = len(latencies)
    fsyncs = rounds * (1 if group else regions)
    entries = rounds * regions * args.batch
    p99 = statistics.quantiles(latencies, n=100)[98] if rounds >= 100 else max(latencies)
    how = "single region" if regions == 1 else "group commit" if group else "one by one"
    return (
        f"{regions:3d} regions, {how:13s}: {rounds / total:7.0f} rounds/s "
        f"{fsyncs / total:7.0f} fsyncs/s {entries / total:9.0f} entries/s   "
        f"p50 {statistics.median(latencies) * 1e3:6.2f} ms   p99 {p99 * 1e3:6.2f} ms"
    )


def main() -> None:
    """Parse the options and print one line per way of writing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to create the stores")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration per way")
    parser.add_argument("--batch", type=int, default=4, help="entries per region per round")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per entry")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        print(f"NodeStore appends, {args.batch} x {args.value_size}-byte entries per region")
        print(run(root / "one", 1, True, args))
        print(run(root / "group", 16, True, args))
        print(run(root / "each", 16, False, args))


if __name__ == "__main__":
    main()
