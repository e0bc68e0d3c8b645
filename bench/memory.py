"""A node's memory with large values, and what UNLINK of them costs (issue 11).

    python bench/memory.py                       # 10M-element list, 1M set, 1M zset
    python bench/memory.py --list-size 1000000   # smaller, quicker

What it does, on 127.0.0.1 with free ports and a temporary data directory:

1. starts a 3-node Cairn cluster (production timing, one region) and reads each node's
   RSS split from /proc/PID/status: RssAnon (the process's own heap: Python objects,
   buffers, caches) and RssFile (file pages mapped in: LMDB's data file, which the kernel
   may drop at will under memory pressure, and the shared libraries);
2. fills a list of 10 million elements, a set and a sorted set of 1 million members
   (pipelined variadic writes, as `bench/datatypes.py --large`), and reads the split again;
3. UNLINKs the three keys (the time of that one command), then measures the worst PING
   latency on the leader while the records are reclaimed in the background, the time until
   INFO's `lazyfree_pending_objects` is 0 on every node, and the split once more.

Everything it started is stopped by PID at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import HOST, console, ensure_tools, start_cairn
from datatypes import fill, rss_mb

from cairn.runtime.local_cluster import LocalCluster


def report(cluster: LocalCluster, leader: int, when: str) -> list[str]:
    """One table row per node: `when`, node (the leader starred), RssAnon, RssFile."""
    rows = []
    for node in (1, 2, 3):
        anon, mapped = rss_mb(cluster.procs[node].pid)
        star = "*" if node == leader else ""
        rows.append(f"| {when} | {node}{star} | {anon:,.0f} | {mapped:,.0f} |")
        console.print(rows[-1])
    return rows


def pending(cluster: LocalCluster) -> int:
    """The deleted values not yet reclaimed, summed over the nodes."""
    total = 0
    for node in (1, 2, 3):
        r = redis.Redis(host=HOST, port=cluster.spec(node).client_port, password=cluster.password)
        total += int(r.info("memory").get("lazyfree_pending_objects", 0))
        r.close()
    return total


def load(r: redis.Redis, list_size: int, set_size: int) -> None:
    """The large values of `bench/datatypes.py --large`."""
    fill(r, "RPUSH", "{l}large", list_size, lambda s: list(range(s, s + 1000)))
    fill(r, "SADD", "{s}large", set_size, lambda s: [f"m{i}" for i in range(s, s + 1000)])
    fill(
        r,
        "ZADD",
        "{z}large",
        set_size,
        lambda s: [x for i in range(s, s + 1000) for x in (i, f"m{i}")],
    )


def unlink_and_reclaim(r: redis.Redis, cluster: LocalCluster) -> list[str]:
    """UNLINK the large values; the figures of the command and of the reclaim after it."""
    started = time.perf_counter()
    r.unlink("{l}large", "{s}large", "{z}large")
    unlink_ms = (time.perf_counter() - started) * 1000
    worst_ping = 0.0
    started = time.monotonic()
    while True:
        for _ in range(20):
            t = time.perf_counter()
            r.ping()
            worst_ping = max(worst_ping, (time.perf_counter() - t) * 1000)
            time.sleep(0.05)
        if not pending(cluster):
            break
    reclaim_s = time.monotonic() - started
    lines = [
        f"UNLINK of the three keys: {unlink_ms:.1f} ms; EXISTS right after: "
        f"{r.exists('{l}large', '{s}large', '{z}large')}; DBSIZE: {r.dbsize()}",
        f"background reclaim until lazyfree_pending_objects is 0 on every node: "
        f"{reclaim_s:.0f} s; worst PING on the leader meanwhile: {worst_ping:.1f} ms",
    ]
    for line in lines:
        console.print(line)
    return lines


def main() -> None:
    """Parse the options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list-size", type=int, default=10_000_000)
    parser.add_argument("--set-size", type=int, default=1_000_000)
    args = parser.parse_args()
    ensure_tools(no_etcd=True)
    cluster = None
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-memory-") as tmp_name:
            console.print("starting a 3-node Cairn cluster ...")
            cluster, leader = start_cairn(Path(tmp_name))
            port = cluster.spec(leader).client_port
            r = redis.Redis(host=HOST, port=port, password=cluster.password)
            time.sleep(5)  # let start-up settle
            rows = ["| when | node | RssAnon MB | RssFile MB |", "|---|--:|--:|--:|"]
            rows += report(cluster, leader, "idle")
            started = time.monotonic()
            load(r, args.list_size, args.set_size)
            console.print(f"loaded in {time.monotonic() - started:.0f} s")
            time.sleep(5)
            rows += report(cluster, leader, "loaded")
            lines = unlink_and_reclaim(r, cluster)
            rows += report(cluster, leader, "reclaimed")
            console.print("\n".join([*rows, "", *lines]))
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
