"""How fast `LmdbLogStore` appends with one fsync per batch, and what the entry cache saves.

Run: `python bench/lmdb_log.py [--dir DIR] [--seconds S] [--value-size N]`. For batch sizes
1, 16 and 128 it appends batches of `value-size`-byte entries (plus a hard state, as a
Ready would) with `sync=True` for `seconds`, and prints batches/s (= fsyncs/s), entries/s
and the median and p99 latency of one `write`. Then it times the core's hot reads
(`term` and `entries` of the newest entries) with and without the in-memory cache. Put
`--dir` on the disk the node will use: the fsync cost is the whole story.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cairn.env import LogBatch
from cairn.raft.types import Entry, HardState
from cairn.storage import LmdbLogStore, LmdbOptions

MAP_SIZE = 2 << 30


def append_rate(path: Path, batch_size: int, seconds: float, value_size: int) -> str:
    """One line: batches/s, entries/s, p50 and p99 write latency with sync per batch."""
    store = LmdbLogStore.open(path, 1, "bench", LmdbOptions(map_size=MAP_SIZE))
    payload = b"v" * value_size
    index, latencies = 0, []
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            ents = tuple(Entry(1, index + i, data=payload) for i in range(1, batch_size + 1))
            index += batch_size
            batch = LogBatch(entries=ents, hard_state=HardState(1, 1, index))
            start = time.perf_counter()
            store.write(batch, sync=True)
            latencies.append(time.perf_counter() - start)
    finally:
        store.close()
    total = sum(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 100 else max(latencies)
    return (
        f"batch {batch_size:4d}: {len(latencies) / total:9.0f} batches/s (fsyncs/s) "
        f"{index / total:10.0f} entries/s   p50 {statistics.median(latencies) * 1e3:6.2f} ms"
        f"   p99 {p99 * 1e3:6.2f} ms"
    )


def read_cost(path: Path, cache_entries: int, value_size: int) -> str:
    """One line: microseconds per `term(i)` and per `entries(i, i + 8)` near the log's end."""
    store = LmdbLogStore.open(
        path, 1, "bench", LmdbOptions(map_size=MAP_SIZE), cache_entries=cache_entries
    )
    try:
        ents = tuple(Entry(1, i, data=b"v" * value_size) for i in range(1, 2001))
        store.write(LogBatch(entries=ents, hard_state=HardState(1, 1, 2000)), sync=True)
        rounds = 20_000
        start = time.perf_counter()
        for i in range(rounds):
            store.term(1001 + i % 1000)
        term_us = (time.perf_counter() - start) / rounds * 1e6
        start = time.perf_counter()
        for i in range(rounds):
            store.entries(1001 + i % 990, 1009 + i % 990)
        entries_us = (time.perf_counter() - start) / rounds * 1e6
    finally:
        store.close()
    return f"cache {cache_entries:5d}: term {term_us:6.2f} us   entries(8) {entries_us:6.2f} us"


def main() -> None:
    """Parse the options, run every measurement, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to create the stores")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration per batch size")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per entry")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        print(f"LmdbLogStore appends, sync per batch, {args.value_size}-byte entries, in {root}")
        for size in (1, 16, 128):
            print(append_rate(root / f"append{size}", size, args.seconds, args.value_size))
        print("hot reads of the newest entries:")
        for cache in (0, 4096):
            print(read_cost(root / f"read{cache}", cache, args.value_size))


if __name__ == "__main__":
    main()
