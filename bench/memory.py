"""A node's memory with large values, at every moment, and what UNLINK of them costs
(issue 11).

    python bench/memory.py                       # 10M-element list, 1M set, 1M zset
    python bench/memory.py --list-size 1000000   # smaller, quicker
    python bench/memory.py --checks              # also the large-vs-100 latency ratios
    python bench/memory.py --timeline /tmp/t.csv --keep /tmp/run   # every sample; logs

What it does, on 127.0.0.1 with free ports and a temporary data directory:

1. starts a 3-node Cairn cluster (production timing, one region) and samples, in a
   thread, every node's RSS split from /proc/PID/status every `--sample-ms` (100 ms):
   RssAnon (the process's own heap: Python objects, buffers, caches) and RssFile (file
   pages mapped in: LMDB's data file, which the node trims, and the shared libraries);
   the idle figure of a node is the mean of its samples over `--idle-s` once started;
2. fills a list of 10 million elements, a set and a sorted set of 1 million members
   (pipelined variadic writes of 1,000 elements, as `bench/datatypes.py --large`; with
   `--checks`, through datatypes.py's own checks, which also fill 100-element values and
   time LPUSH + RPOP, SISMEMBER, ZRANGE 0 99, ZRANK ... on both);
3. UNLINKs the keys (the time of that one command), then measures the worst PING
   latency on the leader while the records are reclaimed in the background and the time
   until INFO's `lazyfree_pending_objects` is 0 on every node.

It prints, per node, the idle RSS and, for each phase (load, reclaim), the largest
RssAnon + RssFile sampled minus the idle figure (with its two parts): issue 11 asks that
this stays within 200 MB at every moment, not only at the end. Everything it started is
stopped by PID at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import HOST, console, ensure_tools, start_cairn
from datatypes import _large_checks, fill, rss_mb

from cairn.runtime.local_cluster import LocalCluster

NODES = (1, 2, 3)
KEYS = ("{l}large", "{s}large", "{z}large", "{l}small", "{s}small", "{z}small")


class Sampler:
    """Samples every node's (RssAnon, RssFile) in MB every `every_s`, in a thread: each
    node's largest total per phase, with its parts, and optionally every sample."""

    def __init__(self, pids: dict[int, int], every_s: float, timeline: TextIO | None) -> None:
        self.pids = pids
        self.every_s = every_s
        self.timeline = timeline
        self.phase = "idle"
        self.samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
        self.peaks: dict[tuple[str, int], tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Sampler:
        if self.timeline is not None:
            heads = [f"n{node} {part}" for node in self.pids for part in ("anon", "file")]
            self.timeline.write(",".join(["s", "phase", *heads]) + "\n")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            row = [f"{time.monotonic() - self._started:.2f}", self.phase]
            for node, pid in self.pids.items():
                try:
                    now = rss_mb(pid)
                except OSError:
                    return
                key = (self.phase, node)
                if self.phase == "idle":
                    self.samples.setdefault(key, []).append(now)
                if sum(now) > sum(self.peaks.get(key, (0.0, 0.0))):
                    self.peaks[key] = now
                row += [f"{now[0]:.1f}", f"{now[1]:.1f}"]
            if self.timeline is not None:
                self.timeline.write(",".join(row) + "\n")
            self._stop.wait(self.every_s)

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        """Attribute the samples taken inside the block to `phase`."""
        self.phase = phase
        try:
            yield
        finally:
            self.phase = "between"

    def idle(self, node: int) -> tuple[float, float]:
        """The node's mean (RssAnon, RssFile) over the idle phase."""
        samples = self.samples.get(("idle", node)) or [rss_mb(self.pids[node])]
        return (
            statistics.fmean(a for a, _ in samples),
            statistics.fmean(f for _, f in samples),
        )

    def rows(self, leader: int, phases: tuple[str, ...]) -> list[str]:
        """The markdown rows: per node, idle RSS and each phase's peak over it."""
        head = "| node | idle RssAnon / RssFile MB |"
        rule = "|---|--:|"
        for phase in phases:
            head += f" {phase}: peak - idle, MB (RssAnon / RssFile at the peak) |"
            rule += "--:|"
        head += " any moment: peak - idle, MB |"
        rule += "--:|"
        rows = [head, rule]
        for node in self.pids:
            anon, mapped = self.idle(node)
            row = f"| {node}{'*' if node == leader else ''} | {anon:.0f} / {mapped:.0f} |"
            busy = [p for (phase, n), p in self.peaks.items() if n == node and phase != "idle"]
            for phase in (*phases, None):
                if phase is None:
                    pa, pf = max(busy, key=sum, default=(anon, mapped))
                else:
                    pa, pf = self.peaks.get((phase, node), (anon, mapped))
                growth = pa + pf - anon - mapped
                row += f" **+{growth:.0f}** (+{pa - anon:.0f} / +{pf - mapped:.0f}) |"
            rows.append(row)
        return rows


def pending(cluster: LocalCluster) -> int:
    """The deleted values not yet reclaimed, summed over the nodes."""
    total = 0
    for node in NODES:
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
    """UNLINK the values; the figures of the command and of the reclaim after it."""
    started = time.perf_counter()
    r.unlink(*KEYS)
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
        f"UNLINK of the keys: {unlink_ms:.1f} ms; EXISTS right after: "
        f"{r.exists(*KEYS)}; DBSIZE: {r.dbsize()}",
        f"background reclaim until lazyfree_pending_objects is 0 on every node: "
        f"{reclaim_s:.0f} s; worst PING on the leader meanwhile: {worst_ping:.1f} ms",
    ]
    for line in lines:
        console.print(line)
    return lines


def run(args: argparse.Namespace, tmp: Path, timeline: TextIO | None) -> list[str]:
    """Start the cluster, sample it through the phases; the report's lines."""
    cluster = None
    try:
        console.print("starting a 3-node Cairn cluster ...")
        cluster, leader = start_cairn(tmp)
        r = redis.Redis(host=HOST, port=cluster.spec(leader).client_port, password=cluster.password)
        time.sleep(5)  # let start-up settle
        pids = {node: cluster.procs[node].pid for node in NODES}
        lines = [f"load average at the start: {Path('/proc/loadavg').read_text().strip()}"]
        with Sampler(pids, args.sample_ms / 1000, timeline) as sampler:
            time.sleep(args.idle_s)
            started = time.monotonic()
            with sampler.during("load"):
                if args.checks:
                    checks = _large_checks(r, args.list_size, args.set_size)
                else:
                    load(r, args.list_size, args.set_size)
                    checks = []
            lines.append(f"loaded (and checked) in {time.monotonic() - started:.0f} s")
            time.sleep(5)
            with sampler.during("reclaim"):
                lines += unlink_and_reclaim(r, cluster)
            time.sleep(args.sample_ms / 1000 * 2)
        lines.append(f"load average at the end: {Path('/proc/loadavg').read_text().strip()}")
        lines += ["", *sampler.rows(leader, ("load", "reclaim"))]
        if checks:
            lines += ["", "| large values | 100 elements, us | large, us | ratio |"]
            lines += ["|---|--:|--:|--:|", *("| " + " | ".join(c) + " |" for c in checks)]
        return lines
    finally:
        if cluster is not None:
            cluster.stop()


def main() -> None:
    """Parse the options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list-size", type=int, default=10_000_000)
    parser.add_argument("--set-size", type=int, default=1_000_000)
    parser.add_argument("--sample-ms", type=float, default=100.0, help="RSS sampling period")
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle sampling before the load")
    parser.add_argument("--checks", action="store_true", help="time datatypes.py's checks too")
    parser.add_argument("--timeline", type=Path, help="write every sample to this CSV file")
    parser.add_argument("--keep", type=Path, help="copy the nodes' logs here at the end")
    args = parser.parse_args()
    ensure_tools(no_etcd=True)
    timeline = args.timeline.open("w") if args.timeline else None
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-memory-") as tmp_name:
            try:
                lines = run(args, Path(tmp_name), timeline)
            finally:
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    for log in Path(tmp_name).glob("cairn/*.log"):
                        shutil.copy(log, args.keep / log.name)
    finally:
        if timeline is not None:
            timeline.close()
    print("\n".join(lines))  # plain: the table is not wrapped


if __name__ == "__main__":
    main()
