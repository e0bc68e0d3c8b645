"""Multi-raft on real nodes: write throughput with 1 region against 16, 3 nodes against 5,
and the start-up and idle CPU of 1,000 regions.

    python bench/regions.py            # about five minutes
    python bench/regions.py --quick    # fewer requests, a shorter idle window

What it does, all on 127.0.0.1 with free ports and temporary data directories:

1. for 1 and for 16 regions (`initial_regions`), starts a 3-node Cairn cluster (production
   timing), waits until every region has a leader, and runs redis-benchmark's SET with
   100-byte values (`-d 100`), random keys (`-r 100000`), 50 clients: plain, on the leader
   of region 1, and (16 regions) in cluster mode (`--cluster`: it reads CLUSTER NODES and
   sends each key to its slot's master, so the load spreads over the three leaders; it
   refuses a cluster with one master), measuring the CPU time the node processes spent
   (from /proc) per operation; then the same cluster-mode run with 16 regions on 5 nodes;
2. starts a cluster founded with 1,000 regions, measures the time until every region has a
   leader and until every region is quiescent, then each node's CPU over an idle window
   (20 s), and the same for a 1-region cluster as the baseline;
3. prints a table and rewrites its own section of `docs/benchmarks.md` (between the
   `regions.py` markers, outside the block `bench/compare.py` generates).

Every process it started is stopped by PID at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import cpu_meter, machine, redis_benchmark

from cairn.admin.client import AdminClient, AdminClientError
from cairn.runtime.local_cluster import HOST, LocalCluster

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- regions.py:begin -->", "<!-- regions.py:end -->"
console = Console()


@dataclass(frozen=True, slots=True)
class WriteRow:
    """SET throughput of one cluster."""

    regions: int
    nodes: int
    how: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_op: float


@dataclass(frozen=True, slots=True)
class IdleRow:
    """Idle CPU of one cluster's nodes."""

    regions: int
    led_s: float
    """From starting the processes until every region had a leader on every node."""
    settled_s: float
    """... until the placement driver had settled (see `settle`)."""
    quiet_s: float
    """... until every region was quiescent on every node, after that."""
    seconds: float
    cpu_percent: list[float]
    """Per node, CPU time over wall time, in percent of one core."""


def raft_info(port: int) -> dict[str, object]:
    c = redis.Redis(host=HOST, port=port, socket_timeout=5)
    try:
        return dict(c.info("raft"))
    finally:
        c.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


def start(root: Path, regions: int, nodes: int = 3) -> tuple[LocalCluster, float, float]:
    """A cluster of `nodes` nodes founded with `regions` regions, every region led and the
    placement driver settled (`settle`); the seconds from starting the processes until
    every region was led, and until the driver settled."""
    extra = f"initial_regions = {regions}\n"
    cluster = LocalCluster.plan(root / f"r{regions}n{nodes}", nodes, extra=extra)
    began = time.monotonic()
    cluster.start()
    ports = [s.client_port for s in cluster.specs]

    def led() -> bool:
        return all(raft_info(p)["raft_regions_without_leader"] == 0 for p in ports)

    wait_until(led, f"leaders for {regions} regions", 120 + regions / 5)
    led_s = time.monotonic() - began
    settle(cluster, regions)
    return cluster, led_s, time.monotonic() - began


def settle(cluster: LocalCluster, regions: int, replicas: int = 3, calm: float = 3.0) -> None:
    """Wait until the placement driver knows every region with `replicas` voters, runs no
    operator, and has recorded no event for `calm` seconds (surplus founding replicas
    removed, leaders balanced)."""
    client = AdminClient([f"{HOST}:{s.admin_port}" for s in cluster.specs], timeout=5)
    last = (-1, time.monotonic())

    def calm_now() -> bool:
        nonlocal last
        try:
            views = client.regions()
        except AdminClientError:  # no leader of the placement group yet
            return False
        done = len(views) == regions and all(
            len(v.voter_nodes()) == min(replicas, len(cluster.specs)) and v.operator is None
            for v in views
        )
        seq = client.events(limit=1).last_seq
        if seq != last[0]:
            last = (seq, time.monotonic())
        return done and time.monotonic() - last[1] >= calm

    wait_until(calm_now, f"the placement driver settling {regions} regions", 300)


SET_ARGS = ["-t", "set", "-c", "50", "-d", "100", "-r", "100000", "--csv"]


def write_rows(root: Path, regions: int, requests: int, nodes: int = 3) -> list[WriteRow]:
    """SET on the leader of region 1 (plain client, 3 nodes); with several regions, also in
    cluster mode (redis-benchmark refuses a cluster with a single master)."""
    cluster, _, _ = start(root, regions, nodes)
    try:
        time.sleep(2)  # the addresses of the peers reach every node with the handshakes
        region1 = raft_info(cluster.spec(1).client_port)["raft_region1"]  # redis-py splits it
        leader = int(region1["leader"])  # type: ignore[index]
        runs: list[tuple[str, int, list[str]]] = []
        if nodes == 3:
            runs.append(("plain, on region 1's leader", leader, []))
        if regions > 1:
            runs.append(("--cluster", 1, ["--cluster"]))
        pids = [p.pid for p in cluster.procs.values()]
        rows = []
        for how, node, extra in runs:
            port = cluster.spec(node).client_port
            with cpu_meter(pids) as used:
                f = redis_benchmark(port, [*extra, "-n", str(requests), *SET_ARGS])
            cpu_us = sum(used.values()) / requests * 1e6
            rows.append(WriteRow(regions, nodes, how, f.rps, f.p50_ms, f.p99_ms, cpu_us))
        return rows
    finally:
        cluster.stop()


def idle_row(root: Path, regions: int, seconds: float) -> IdleRow:
    began = time.monotonic()
    cluster, led_s, settled_s = start(root, regions)
    try:
        ports = [s.client_port for s in cluster.specs]

        def quiet() -> bool:
            return all(raft_info(p)["raft_regions_quiescent"] == regions for p in ports)

        wait_until(quiet, f"{regions} quiescent regions", 120)
        quiet_s = time.monotonic() - began
        pids = [p.pid for p in cluster.procs.values()]
        began = time.monotonic()
        with cpu_meter(pids) as used:
            time.sleep(seconds)
        wall = time.monotonic() - began
        cpu = [100 * used[pid] / wall for pid in pids]
        return IdleRow(regions, led_s, settled_s, quiet_s, wall, cpu)
    finally:
        cluster.stop()


def print_tables(writes: list[WriteRow], idles: list[IdleRow]) -> None:
    table = Table(title="SET, 50 clients, -d 100, random keys (redis-benchmark)")
    for column in ("regions", "nodes", "client", "ops/s", "p50 ms", "p99 ms", "CPU µs/op"):
        table.add_column(column, justify="right")
    for w in writes:
        table.add_row(
            str(w.regions), str(w.nodes), w.how, f"{w.rps:,.0f}", f"{w.p50_ms:.2f}",
            f"{w.p99_ms:.2f}", f"{w.cpu_us_per_op:.0f}",
        )  # fmt: skip
    console.print(table)
    table = Table(title="Start-up and idle CPU per node, 3 nodes")
    for column in (
        "regions",
        "led s",
        "settled s",
        "quiet s",
        "window s",
        "node 1 %",
        "node 2 %",
        "node 3 %",
    ):
        table.add_column(column, justify="right")
    for i in idles:
        table.add_row(
            str(i.regions), f"{i.led_s:.1f}", f"{i.settled_s:.1f}", f"{i.quiet_s:.1f}",
            f"{i.seconds:.0f}",
            *(f"{c:.2f}" for c in i.cpu_percent),
        )  # fmt: skip
    console.print(table)


def markdown(writes: list[WriteRow], idles: list[IdleRow], argv: list[str]) -> str:
    lines = [
        BEGIN,
        "<!-- Generated by bench/regions.py; edits between these markers are overwritten. -->",
        "## Multi-raft on real nodes: 1 region against 16, 3 nodes against 5, 1,000 regions",
        "",
        f"`python bench/regions.py {' '.join(argv)}`".replace(" `", "`"),
        f"on {datetime.date.today().isoformat()}, {machine()}.",
        "",
        "SET, 50 clients, 100-byte values, random keys: a plain redis-benchmark on",
        "the leader of region 1 (other regions' keys are forwarded to their leaders), and",
        "`redis-benchmark --cluster` (each key sent to its slot's leader; it needs two",
        "masters or more). CPU is all the node processes' together, per operation.",
        "",
        "| regions | nodes | client | ops/s | p50 ms | p99 ms | CPU µs/op |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for w in writes:
        lines.append(
            f"| {w.regions} | {w.nodes} | {w.how} | {w.rps:,.0f} | {w.p50_ms:.2f} | "
            f"{w.p99_ms:.2f} | {w.cpu_us_per_op:.0f} |"
        )
    lines += [
        "",
        "Start-up of a 3-node cluster (seconds from starting the processes until every",
        "region has a leader, until the placement driver has settled: no operator and no",
        "event for 3 s, and until every region is quiescent), then the idle CPU of each",
        "node (percent of one core):",
        "",
        "| regions | led s | settled s | quiet s | window s | node 1 % | node 2 % | node 3 % |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i in idles:
        cells = " | ".join(f"{c:.2f}" for c in i.cpu_percent)
        lines.append(
            f"| {i.regions} | {i.led_s:.1f} | {i.settled_s:.1f} | {i.quiet_s:.1f} | "
            f"{i.seconds:.0f} | {cells} |"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, 10 s idle")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the doc")
    parser.add_argument(
        "--idle-regions", type=int, default=1000, help="regions of the idle cluster (1000)"
    )
    args = parser.parse_args()
    requests = 20_000 if args.quick else 100_000
    idle_seconds = 10.0 if args.quick else 20.0
    with tempfile.TemporaryDirectory(prefix="cairn-regions-") as tmp:
        root = Path(tmp)
        writes = []
        for regions, nodes in ((1, 3), (16, 3), (16, 5)):
            writes += write_rows(root, regions, requests, nodes)
            console.print(writes[-1])
        idles = []
        for n in (1, args.idle_regions):
            idles.append(idle_row(root, n, idle_seconds))
            console.print(idles[-1])
    print_tables(writes, idles)
    if not args.no_doc:
        write_doc(markdown(writes, idles, sys.argv[1:]))
        console.print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
