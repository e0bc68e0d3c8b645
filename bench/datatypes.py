"""Cairn's lists, sets and sorted sets against redis-server (appendfsync always), in one run.

    python bench/datatypes.py            # every test, about five minutes
    python bench/datatypes.py --quick    # 1/10 of the requests
    python bench/datatypes.py --large    # also the large-value costs (10M-element list, ...)

What it does, on 127.0.0.1 with free ports and temporary data directories:

1. starts a 3-node Cairn cluster (production timing) and one `redis-server --appendonly yes
   --appendfsync always`;
2. runs `redis-benchmark -t T` (50 clients, `-r 100000`) for SET and for every data-type
   test (lpush, rpush, lpop, rpop, sadd, spop, zadd, zpopmin, lrange_100, lrange_600)
   against Cairn's leader and against redis-server, back to back, and prints each rate as a
   ratio to Redis's and to Cairn's own SET rate in the same run (issue 11 asks each write
   to reach 0.8 x Cairn's SET), with the CPU time the three Cairn nodes spent per command
   (from /proc, the steadier figure on a shared machine);
3. with `--large`: fills a list of 10 million elements, a set and a sorted set of 1 million
   members (pipelined variadic writes), and compares the latency of LPUSH+RPOP, SISMEMBER,
   SRANDMEMBER, SPOP (adding the member back), ZRANGE 0 99, ZRANK, ZRANGE and ZCOUNT in
   the middle and ZRANDMEMBER on them with the same commands on 100-element values (issue
   11 asks within 2x), and the leader's RSS growth over its idle size (within 200 MB
   asked), its heap (RssAnon) and LMDB's mapped pages (RssFile) apart;
4. rewrites the generated section of `docs/benchmarks.md` between its markers.

Everything it started is stopped by PID at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (
    HOST,
    Figures,
    Processes,
    console,
    cpu_meter,
    ensure_tools,
    machine,
    redis_benchmark,
    start_cairn,
    start_redis,
    versions,
    write_doc,
)

BEGIN, END = "<!-- datatypes.py:begin -->", "<!-- datatypes.py:end -->"
TESTS = (
    "set",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "sadd",
    "spop",
    "zadd",
    "zpopmin",
    "lrange_100",
    "lrange_600",
)
READS = frozenset({"lrange_100", "lrange_600"})
REQUESTS = {"lrange_100": 20_000, "lrange_600": 5_000}
DEFAULT_REQUESTS = 40_000
QUICK_DIVISOR = 10


@dataclass(slots=True)
class Row:
    """One redis-benchmark test on both systems."""

    test: str
    cairn: Figures
    redis: Figures
    cpu_us: float = 0.0
    """CPU microseconds per command, all three Cairn nodes together."""


def bench_args(test: str, divisor: int) -> list[str]:
    """redis-benchmark arguments for `test`, without host and port."""
    requests = max(500, REQUESTS.get(test, DEFAULT_REQUESTS) // divisor)
    return ["-t", test, "-n", str(requests), "-c", "50", "-r", "100000", "--csv"]


def run_tests(cairn_port: int, redis_port: int, divisor: int, pids: list[int]) -> list[Row]:
    """Every test on Cairn, then on Redis, back to back; the Cairn nodes' (`pids`) CPU
    time around each Cairn run."""
    rows = []
    for step, test in enumerate(TESTS, 1):
        console.print(f"  [{step}/{len(TESTS)}] {test} ...")
        args = bench_args(test, divisor)
        with cpu_meter(pids) as used:
            cairn = redis_benchmark(cairn_port, args)
        theirs = redis_benchmark(redis_port, args)
        requests = int(args[args.index("-n") + 1])
        rows.append(Row(test, cairn, theirs, 1e6 * sum(used.values()) / requests))
    return rows


def latency_us(call: Callable[[], object], rounds: int, budget_s: float = 5.0) -> float:
    """The median latency of `call` in microseconds, over `rounds` calls, or fewer (at
    least 3) once they took `budget_s` (a linear call on a huge value takes seconds)."""
    samples = []
    spent = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
        spent += samples[-1] / 1e6
        if len(samples) >= 3 and spent > budget_s:
            break
    return statistics.median(samples)


def fill(r: redis.Redis, command: str, key: str, count: int, make: Callable[[int], list]) -> None:
    """Write `count` elements into `key` with variadic `command`s, 1,000 a call, pipelined."""
    batch, depth = 1000, 16
    pipe = r.pipeline(transaction=False)
    for start in range(0, count, batch):
        pipe.execute_command(command, key, *make(start))
        if len(pipe.command_stack) >= depth:
            pipe.execute()
        if start % 500_000 == 0:
            console.print(f"    {key}: {start:,} / {count:,}")
    pipe.execute()


def rss_mb(pid: int) -> tuple[float, float]:
    """(RssAnon, RssFile) of process `pid`, in MB: its own heap, and the file pages it
    maps (LMDB's data file, libraries), which the kernel can drop under pressure."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0)


class RssPeak:
    """Samples a process's RssAnon + RssFile every `every_s` in a thread: the largest
    total seen (the criterion is that the RSS *stays* within a bound, not only at the
    end), with its two parts."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid = pid
        self.every_s = every_s
        self.peak = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = rss_mb(self.pid)
            except OSError:
                return
            if sum(now) > sum(self.peak):
                self.peak = now
            self._stop.wait(self.every_s)


def large_values(r: redis.Redis, pid: int, list_size: int, set_size: int) -> list[list[str]]:
    """Latency of single-element operations on large values against 100-element ones,
    and the leader's RSS growth over its idle size (at the end, and the largest seen)."""
    idle = rss_mb(pid)
    with RssPeak(pid) as peak:
        rows = _large_checks(r, list_size, set_size)
    end = rss_mb(pid)
    for name, before, after, top in zip(("RssAnon", "RssFile"), idle, end, peak.peak, strict=True):
        row = [f"leader {name} growth (MB)", f"{before:.0f} idle", f"+{after - before:.0f}"]
        rows.append([*row, f"at the peak: +{top - before:.0f}"])
    rows.append(
        [
            "leader RSS growth, RssAnon + RssFile (MB)",
            f"{sum(idle):.0f} idle",
            f"+{sum(end) - sum(idle):.0f}",
            f"peak +{sum(peak.peak) - sum(idle):.0f}",
        ]
    )
    return rows


def _large_checks(r: redis.Redis, list_size: int, set_size: int) -> list[list[str]]:
    """Fill the values, then time the checks (see `large_values`)."""
    for size, suffix in ((100, "small"), (list_size, "large")):
        fill(r, "RPUSH", f"{{l}}{suffix}", size, lambda s: list(range(s, s + 1000)))
    for size, suffix in ((100, "small"), (set_size, "large")):
        n = min(size, 1000)
        fill(r, "SADD", f"{{s}}{suffix}", size, lambda s, n=n: [f"m{i}" for i in range(s, s + n)])
        fill(
            r,
            "ZADD",
            f"{{z}}{suffix}",
            size,
            lambda s, n=n: [x for i in range(s, s + n) for x in (i, f"m{i}")],
        )
    rows = []
    half = {"small": 50, "large": set_size // 2}  # ranks are dearest mid-set
    checks = {
        "LPUSH + RPOP": lambda k: (r.lpush(f"{{l}}{k}", "x"), r.rpop(f"{{l}}{k}")),
        "SISMEMBER": lambda k: r.sismember(f"{{s}}{k}", "m77"),
        "SRANDMEMBER": lambda k: r.srandmember(f"{{s}}{k}"),
        "SPOP + SADD it back": lambda k: r.sadd(f"{{s}}{k}", r.spop(f"{{s}}{k}")),
        "ZRANGE 0 99": lambda k: r.zrange(f"{{z}}{k}", 0, 99),
        "ZRANK (middle member)": lambda k: r.zrank(f"{{z}}{k}", f"m{half[k]}"),
        "ZRANGE of 10 at the middle rank": lambda k: r.zrange(f"{{z}}{k}", half[k], half[k] + 9),
        "ZCOUNT (middle scores)": lambda k: r.zcount(f"{{z}}{k}", half[k], half[k] + 10),
        "ZRANDMEMBER": lambda k: r.zrandmember(f"{{z}}{k}"),
    }
    for name, call in checks.items():
        small = latency_us(lambda call=call: call("small"), 300)
        try:
            large = latency_us(lambda call=call: call("large"), 300)
        except redis.RedisError as e:  # e.g. a linear walk that cost the leader its term
            rows.append([name, f"{small:.0f}", f"failed: {e}", ""])
            time.sleep(5)  # let the cluster elect a leader again
            continue
        rows.append([name, f"{small:.0f}", f"{large:.0f}", f"{large / small:.2f}"])
    return rows


def markdown(rows: list[Row], large: list[list[str]], argv: list[str], started: str) -> str:
    """The generated section of docs/benchmarks.md."""
    cairn_set = rows[0].cairn.rps
    lines = [
        BEGIN,
        "",
        f"### Data types, `python bench/datatypes.py {' '.join(argv)}`".rstrip() + f" ({started})",
        "",
        f"{machine()}; {versions()}. 3 Cairn nodes, one region; redis-server with",
        "`appendfsync always`; redis-benchmark, 50 clients, `-r 100000`.",
        "",
        "| test | Cairn ops/s | p99 ms | Redis ops/s | Cairn/Redis | Cairn/Cairn SET "
        "| Cairn CPU us/op (3 nodes) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.test} | {row.cairn.rps:,.0f} | {row.cairn.p99_ms:.1f} | "
            f"{row.redis.rps:,.0f} | {row.cairn.rps / row.redis.rps:.2f} | "
            f"{row.cairn.rps / cairn_set:.2f} | {row.cpu_us:,.0f} |"
        )
    if large:
        lines += ["", "| large values | 100 elements, us | large, us | ratio |"]
        lines += ["|---|--:|--:|--:|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in large]
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"1/{QUICK_DIVISOR} of the requests")
    parser.add_argument("--large", action="store_true", help="also the large-value costs")
    parser.add_argument("--list-size", type=int, default=10_000_000)
    parser.add_argument("--set-size", type=int, default=1_000_000)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    ensure_tools(no_etcd=True)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    procs = Processes()
    cluster = None
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-datatypes-") as tmp_name:
            tmp = Path(tmp_name)
            console.print("starting redis-server and a 3-node Cairn cluster ...")
            redis_port = start_redis(procs, tmp)
            cluster, leader = start_cairn(tmp)
            port = cluster.spec(leader).client_port
            pids = [proc.pid for proc in cluster.procs.values()]
            rows = run_tests(port, redis_port, QUICK_DIVISOR if args.quick else 1, pids)
            large: list[list[str]] = []
            if args.large:
                console.print("large values ...")
                r = redis.Redis(host=HOST, port=port, password=cluster.password)
                large = large_values(r, cluster.procs[leader].pid, args.list_size, args.set_size)
            section = markdown(rows, large, sys.argv[1:], started)
            console.print(section)
            if not args.no_doc:
                write_doc(section, BEGIN, END)
    finally:
        if cluster is not None:
            cluster.stop()
        procs.stop_all()


if __name__ == "__main__":
    main()
