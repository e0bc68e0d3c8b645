"""MULTI/EXEC and EVALSHA on Cairn against redis-server (appendfsync always), in one run.

    python bench/transactions.py            # 10 s per workload and client count
    python bench/transactions.py --quick    # 3 s each
    python bench/transactions.py --no-doc   # print only
    python bench/transactions.py --no-doc --only multi-x --clients 1 --async-commit-max-keys 0
                                            # one workload, two-phase commit (A/B)

What it does, on 127.0.0.1 with free ports and temporary data directories:

1. starts a 3-node Cairn cluster founded with 3 regions (`cairn dev`'s default layout) and
   one `redis-server --appendonly yes --appendfsync always`;
2. drives each workload with raw RESP over asyncio sockets (hiredis parses the replies),
   at 1 client (latency) and at 50 clients (throughput), against the node leading the
   keys' region and against redis-server, back to back:
   - ``set2``: two SETs pipelined in one round trip (the baseline issue 12 names);
   - ``multi``: MULTI, SET, SET, EXEC pipelined, both keys in one region (one hash tag);
   - ``multi-x``: the same with the keys in two regions (Cairn only: a distributed
     transaction; answered ``-CROSSSLOT`` where it is not supported, counted as errors);
   - ``evalsha``: EVALSHA of a script SETting both keys (one region);
3. prints throughput, p50 and p99, Cairn's CPU per transaction (all three nodes, from
   /proc), and the ratios issue 12 asks about: single-region MULTI/EXEC against two
   pipelined SETs (at most 1.3 x the cost), cross-region against single-region, and Cairn
   against Redis; rewrites the generated section of `docs/benchmarks.md`.

Each reply is checked (EXEC must answer two OKs): a wrong reply counts as an error, and
the run says how many. Everything it started is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hiredis
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (
    HOST,
    Processes,
    console,
    cpu_meter,
    ensure_tools,
    machine,
    resp_ping,
    start_redis,
    versions,
    wait_until,
    write_doc,
)

from cairn.runtime.local_cluster import LocalCluster
from cairn.store.slot import key_slot

BEGIN, END = "<!-- transactions.py:begin -->", "<!-- transactions.py:end -->"
SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('SET', KEYS[2], ARGV[1])"
VALUE = b"v" * 100
KEYSPACE = 100_000
REGIONS = 3
CLIENTS = (1, 50)


def command(*args: bytes) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


@dataclass(frozen=True, slots=True)
class Workload:
    """A request (one round trip) and the replies that mean success."""

    name: str
    request: Callable[[int], bytes]
    replies: int
    ok: Callable[[list[object]], bool]
    cairn_only: bool = False


@dataclass(slots=True)
class Result:
    """One workload at one client count on one system."""

    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu_us: float | None = None

    @property
    def rps(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def workloads(tag_a: bytes, tag_b: bytes, sha: bytes) -> list[Workload]:
    """The four workloads; `tag_a` and `tag_b` are hash tags in two different regions."""

    def keys(n: int, second: bytes) -> tuple[bytes, bytes]:
        return b"{%s}:k1:%d" % (tag_a, n % KEYSPACE), b"{%s}:k2:%d" % (second, n % KEYSPACE)

    def two_oks(replies: list[object]) -> bool:
        return replies[:2] == [b"OK", b"OK"]

    def exec_ok(replies: list[object]) -> bool:
        return replies[0] == b"OK" and replies[3] == [b"OK", b"OK"]

    def multi(second: bytes) -> Callable[[int], bytes]:
        def request(n: int) -> bytes:
            k1, k2 = keys(n, second)
            return (
                command(b"MULTI")
                + command(b"SET", k1, VALUE)
                + command(b"SET", k2, VALUE)
                + command(b"EXEC")
            )

        return request

    def set2(n: int) -> bytes:
        k1, k2 = keys(n, tag_a)
        return command(b"SET", k1, VALUE) + command(b"SET", k2, VALUE)

    def evalsha(n: int) -> bytes:
        k1, k2 = keys(n, tag_a)
        return command(b"EVALSHA", sha, b"2", k1, k2, VALUE)

    return [
        Workload("set2", set2, 2, two_oks),
        Workload("multi", multi(tag_a), 4, exec_ok),
        Workload("multi-x", multi(tag_b), 4, exec_ok, cairn_only=True),
        Workload("evalsha", evalsha, 1, lambda r: r == [b"OK"]),
    ]


async def _client(
    port: int,
    password: str | None,
    work: Workload,
    first: int,
    stop_at: float,
    result: Result,
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    parser = hiredis.Reader()
    if password:
        writer.write(command(b"AUTH", password.encode()))
        await _replies(reader, parser, 1)
    n = first
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        writer.write(work.request(n))
        replies = await _replies(reader, parser, work.replies)
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        if work.ok(replies):
            result.ops += 1
        else:
            result.errors += 1
        n += 7919
    writer.close()


async def _replies(
    reader: asyncio.StreamReader, parser: hiredis.Reader, count: int
) -> list[object]:
    out: list[object] = []
    while len(out) < count:
        item = parser.gets()
        if item is False:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            parser.feed(data)
            continue
        out.append(item.args[0].encode() if isinstance(item, hiredis.ReplyError) else item)
    return out


def idle_cpu_rate(pids: list[int], seconds: float = 3.0) -> float:
    """CPU seconds per second `pids` use with no requests (ticks, heartbeats, placement)."""
    with cpu_meter(pids) as used:
        time.sleep(seconds)
    return sum(used.values()) / seconds


def drive(
    port: int,
    password: str | None,
    work: Workload,
    clients: int,
    seconds: float,
    pids: list[int],
    idle_rate: float = 0.0,
) -> Result:
    """Run `work` with `clients` connections for `seconds`; CPU of `pids` per success,
    less their idle use (`idle_rate` CPU seconds per second)."""
    result = Result(0, 0, seconds, [])

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(port, password, work, i * 104729, stop_at, result) for i in range(clients))
        )

    with cpu_meter(pids) as used:
        asyncio.run(main())
    if pids and result.ops:
        busy = max(0.0, sum(used.values()) - idle_rate * seconds)
        result.cpu_us = busy / result.ops * 1e6
    return result


def region_leaders(client: redis.Redis) -> list[tuple[int, int, int]]:
    """CLUSTER SLOTS as (first slot, last slot, master port)."""
    return [(int(r[0]), int(r[1]), int(r[2][1])) for r in client.execute_command("CLUSTER SLOTS")]


def pick_tags(ranges: list[tuple[int, int, int]]) -> tuple[bytes, bytes, int]:
    """Two hash tags in different regions, the first in a region the second's leader does
    not also lead when avoidable; the port of the first tag's leader."""

    def owner(tag: bytes) -> tuple[int, int, int]:
        slot = key_slot(tag)
        return next(r for r in ranges if r[0] <= slot <= r[1])

    tags = [b"t%d" % i for i in range(1000)]
    first = tags[0]
    second = next(t for t in tags if owner(t)[:2] != owner(first)[:2])
    return first, second, owner(first)[2]


def markdown(
    rows: list[tuple[str, int, Result | None, Result | None]], argv: list[str], started: str
) -> str:
    """The generated section of docs/benchmarks.md."""
    by = {(name, clients): (cairn, red) for name, clients, cairn, red in rows}
    lines = [
        BEGIN,
        "## Transactions and scripts: `bench/transactions.py`",
        "",
        f"Generated by `python bench/transactions.py {' '.join(argv)}`, {started}, on "
        f"{machine()}; {versions()}. Cairn: 3 nodes, 3 regions, production timing, each "
        "request to the leader of its first key's region; Redis: one redis-server with "
        "`appendfsync always`. One request = one round trip: two pipelined SETs, or "
        "MULTI+SET+SET+EXEC, or one EVALSHA setting two keys. CPU: all Cairn nodes' CPU "
        "per successful request, less their idle use measured before. The load generator "
        "is one Python process (asyncio, hiredis), which caps the rates it can offer "
        "(Redis's more than Cairn's).",
        "",
        "| workload | clients | Cairn req/s | p50 ms | p99 ms | CPU µs/req | errors "
        "| Redis req/s | p50 ms | Cairn/Redis |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, clients, cairn, red in rows:
        c = cairn or Result(0, 0, 0, [])
        cells = [
            name,
            str(clients),
            f"{c.rps:,.0f}",
            f"{c.percentile(0.5):.2f}",
            f"{c.percentile(0.99):.2f}",
            "-" if c.cpu_us is None else f"{c.cpu_us:,.0f}",
            str(c.errors),
        ]
        if red is None:
            cells += ["-", "-", "-"]
        else:
            ratio = c.rps / red.rps if red.rps else float("nan")
            cells += [f"{red.rps:,.0f}", f"{red.percentile(0.5):.2f}", f"{ratio:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Ratios in this run (cost = CPU per request; latency = p50 at 1 client):", ""]

    def cost(name: str, clients: int) -> Result | None:
        return by.get((name, clients), (None, None))[0]

    for clients in CLIENTS:
        base, multi, cross = cost("set2", clients), cost("multi", clients), cost("multi-x", clients)
        if base and multi and base.cpu_us and multi.cpu_us:
            lines.append(
                f"- {clients} client(s): single-region MULTI/EXEC costs "
                f"{multi.cpu_us / base.cpu_us:.2f} x two pipelined SETs in CPU, "
                f"{base.rps / multi.rps if multi.rps else float('nan'):.2f} x in time per "
                "request (issue 12 asks at most 1.3 x)"
            )
        if multi and cross and multi.cpu_us and cross.cpu_us and cross.ops:
            lines.append(
                f"- {clients} client(s): a cross-region MULTI/EXEC costs "
                f"{cross.cpu_us / multi.cpu_us:.2f} x a single-region one in CPU, "
                f"{multi.rps / cross.rps:.2f} x in time per request"
            )
        elif cross is not None and not cross.ops:
            lines.append(
                f"- {clients} client(s): cross-region MULTI/EXEC failed on every "
                "request (not supported by this build)"
            )
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement, not 10")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--only", action="append", help="run only this workload (repeatable)")
    parser.add_argument(
        "--clients", type=int, action="append", help="run only this client count (repeatable)"
    )
    parser.add_argument(
        "--async-commit-max-keys",
        type=int,
        help="the nodes' limits.async_commit_max_keys (0: two-phase commit only)",
    )
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    extra = f"initial_regions = {REGIONS}\n"
    if args.async_commit_max_keys is not None:
        extra += f"[limits]\nasync_commit_max_keys = {args.async_commit_max_keys}\n"
    ensure_tools(no_etcd=True)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    procs = Processes()
    cluster: LocalCluster | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-txn-bench-") as tmp_name:
            tmp = Path(tmp_name)
            console.print("starting redis-server and a 3-node, 3-region Cairn cluster ...")
            redis_port = start_redis(procs, tmp)
            cluster = LocalCluster.plan(tmp / "cairn", 3, extra=extra)
            cluster.start()
            cluster.wait_for_leader(timeout=60.0)
            any_port = cluster.spec(1).client_port
            wait_until(lambda: resp_ping(any_port), "a Cairn node")
            probe = redis.Redis(host=HOST, port=any_port, password=cluster.password)
            wait_until(lambda: len(region_leaders(probe)) >= REGIONS, "every region's leader")
            tag_a, tag_b, port = pick_tags(region_leaders(probe))
            # the script cache is per node, as in Redis Cluster: load it where it runs
            leader = redis.Redis(host=HOST, port=port, password=cluster.password)
            sha = leader.script_load(SCRIPT).encode()
            redis.Redis(host=HOST, port=redis_port).script_load(SCRIPT)
            pids = [p.pid for p in cluster.procs.values()]
            idle = idle_cpu_rate(pids)
            rows: list[tuple[str, int, Result | None, Result | None]] = []
            for work in workloads(tag_a, tag_b, sha):
                if args.only and work.name not in args.only:
                    continue
                for clients in args.clients or CLIENTS:
                    console.print(f"{work.name}, {clients} client(s) ...")
                    cairn = drive(port, cluster.password, work, clients, seconds, pids, idle)
                    red = (
                        None
                        if work.cairn_only
                        else drive(redis_port, None, work, clients, seconds, [])
                    )
                    rows.append((work.name, clients, cairn, red))
            section = markdown(rows, sys.argv[1:], started)
            console.print(section)
            if not args.no_doc:
                write_doc(section, BEGIN, END)
    finally:
        if cluster is not None:
            cluster.stop()
        procs.stop_all()


if __name__ == "__main__":
    main()
