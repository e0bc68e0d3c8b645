"""Cairn against redis-server (appendfsync always) and etcd, on this machine, in one run.

    python bench/compare.py            # full run, several minutes
    python bench/compare.py --quick    # 1/12 of the requests, about two minutes
    python bench/compare.py --profile /tmp/prof   # also py-spy the leader under SET load

What it does, all on 127.0.0.1 with free ports and temporary data directories:

1. starts a 3-node Cairn cluster (`LocalCluster`, production timing), one `redis-server
   --appendonly yes --appendfsync always`, and a 3-node etcd cluster (Debian's etcd-server);
2. runs redis-benchmark against Cairn's leader and against redis-server, back to back for
   each workload: SET and GET with 100-byte values (`-d 100`), random keys (`-r 100000`),
   50 clients, with and without `-P 16`, and SET with one client (latency);
3. runs the equivalent put load against etcd's leader with `bench/etcd_load` (Go, built
   against Debian's golang-etcd-server-dev sources in GOPATH mode), or, when Go cannot
   build it, with a Python load generator over etcd's HTTP/JSON gateway (said in the output);
4. prints a table with throughput, p50 and p99, the ratios Cairn/Redis and Cairn/etcd, the
   targets of issue 3, and the CPU time Cairn's nodes spent per operation; and rewrites the
   generated section of `docs/benchmarks.md` with the figures, the command, the date and the
   machine. Everything it started is stopped by PID at the end, also on failure or Ctrl-C.

The CPU time per operation (from /proc) is the figure to compare between code versions:
throughput on a small shared machine moves with whatever else runs, CPU per op much less.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import csv
import datetime
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cairn.runtime.local_cluster import LocalCluster, free_ports

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- compare.py:begin -->", "<!-- compare.py:end -->"
GOPATH = "/usr/share/gocode"
VALUE_SIZE = 100
KEYSPACE = 100_000
CLIENTS = 50

console = Console()


# -- workloads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """One redis-benchmark run (and its etcd counterpart, if it has one)."""

    name: str
    command: str
    clients: int
    pipeline: int
    requests: int
    """Full-run request count; `--quick` divides it by `QUICK_DIVISOR`."""
    etcd: bool = False

    def args(self, requests: int) -> list[str]:
        """redis-benchmark arguments, without host and port."""
        args = ["-t", self.command, "-n", str(requests), "-c", str(self.clients)]
        args += ["-d", str(VALUE_SIZE), "-r", str(KEYSPACE), "--csv"]
        if self.pipeline > 1:
            args += ["-P", str(self.pipeline)]
        return args


WORKLOADS = (
    Workload("SET, 50 clients", "set", CLIENTS, 1, 60_000, etcd=True),
    Workload("GET, 50 clients", "get", CLIENTS, 1, 200_000),
    Workload("SET, 50 clients, -P 16", "set", CLIENTS, 16, 200_000),
    Workload("GET, 50 clients, -P 16", "get", CLIENTS, 16, 500_000),
    Workload("SET, 1 client", "set", 1, 1, 4_000, etcd=True),
)
QUICK_DIVISOR = 12
SET_LOAD = WORKLOADS[0]
SPY_ARGS = ("-r", "250", "--nonblocking")


@dataclass(frozen=True, slots=True)
class Figures:
    """Throughput and latency of one run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0

    def ratio(self, other: Figures | None) -> float | None:
        """This throughput over `other`'s."""
        if other is None or other.rps <= 0:
            return None
        return self.rps / other.rps


@dataclass(slots=True)
class Row:
    """One workload's figures on every system; CPU is Cairn's, ms per 1000 operations."""

    workload: Workload
    cairn: Figures | None = None
    redis: Figures | None = None
    etcd: Figures | None = None
    cpu_leader: float | None = None
    cpu_followers: float | None = None
    note: str = ""
    """What went wrong on Cairn's side, if anything (e.g. a leader change)."""


# -- processes -----------------------------------------------------------------------------


class TerminatedError(Exception):
    """SIGTERM arrived; unwinds like Ctrl-C so every process gets stopped."""


@dataclass
class Processes:
    """Every child process this run started, stopped by PID at the end."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], log: Path) -> None:
        """Start `argv` in its own session (so a terminal's Ctrl-C reaches only us)."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append((name, proc))

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM each child by PID, then SIGKILL whatever outlives `timeout`."""
        for _, proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def ensure_tools(no_etcd: bool) -> None:
    """Install redis-server/redis-tools and etcd-server from Debian when missing (as root)."""
    wanted = {"redis-server": "redis-server", "redis-benchmark": "redis-tools"}
    if not no_etcd:
        wanted["etcd"] = "etcd-server"
    missing = sorted({pkg for tool, pkg in wanted.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: run apt-get install -y {' '.join(missing)}")
    console.print(f"installing {', '.join(missing)} ...")
    subprocess.run(["apt-get", "install", "-y", *missing], check=True, capture_output=True)


def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    """Poll `check()` until it is true, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def resp_ping(port: int) -> bool:
    """Whether a Redis-protocol server on `port` answers PING."""
    with socket.create_connection((HOST, port), timeout=1.0) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def start_redis(procs: Processes, tmp: Path) -> int:
    """One redis-server fsyncing every write; its port."""
    (port,) = free_ports(1)
    data = tmp / "redis"
    data.mkdir()
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(data)]
    argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"]
    procs.start("redis-server", argv, tmp / "redis.log")
    wait_until(lambda: resp_ping(port), "redis-server")
    return port


def start_etcd(procs: Processes, tmp: Path, members: int = 3) -> list[str]:
    """A `members`-node etcd cluster; its client URLs."""
    ports = free_ports(2 * members)
    clients = [f"http://{HOST}:{p}" for p in ports[:members]]
    peers = [f"http://{HOST}:{p}" for p in ports[members:]]
    cluster = ",".join(f"e{i}={peers[i]}" for i in range(members))
    for i in range(members):
        argv = ["etcd", "--name", f"e{i}", "--data-dir", str(tmp / f"etcd{i}")]
        argv += ["--listen-client-urls", clients[i], "--advertise-client-urls", clients[i]]
        argv += ["--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i]]
        argv += ["--initial-cluster", cluster, "--initial-cluster-state", "new"]
        argv += ["--initial-cluster-token", "cairn-bench", "--log-level", "warn"]
        argv += ["--logger", "zap"]
        procs.start(f"etcd{i}", argv, tmp / f"etcd{i}.log")
    for url in clients:
        wait_until(lambda url=url: _etcd_healthy(url), f"etcd at {url}")
    return clients


def _etcd_healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=1.0) as resp:
        return bool(json.loads(resp.read()).get("health") == "true")


def start_cairn(tmp: Path) -> tuple[LocalCluster, int]:
    """A 3-node Cairn cluster with the default (production) timing; its leader's id."""
    cluster = LocalCluster.plan(tmp / "cairn", 3)
    cluster.start()
    leader = cluster.wait_for_leader(timeout=60.0)
    wait_until(lambda: resp_ping(cluster.spec(leader).client_port), "the Cairn leader")
    return cluster, leader


# -- measuring -----------------------------------------------------------------------------


def redis_benchmark(port: int, args: list[str]) -> Figures:
    """Run redis-benchmark and read its CSV line (rps, p50, p99)."""
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r and r[0] != "test"]
    if out.returncode != 0 or not rows:
        raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr.strip()[-500:]}")
    row = rows[-1]
    return Figures(rps=float(row[1]), p50_ms=float(row[4]), p99_ms=float(row[6]))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def cpu_meter(pids: Sequence[int]) -> Iterator[dict[int, float]]:
    """Yields a dict filled, on exit, with the CPU seconds each pid used inside the block."""
    before = {pid: cpu_seconds(pid) for pid in pids}
    used: dict[int, float] = {}
    yield used
    for pid in pids:
        used[pid] = cpu_seconds(pid) - before[pid]


def etcd_load_binary(tmp: Path) -> Path | None:
    """Build bench/etcd_load (cached by Go's build cache); None when Go cannot build it."""
    if shutil.which("go") is None or not Path(GOPATH, "src/go.etcd.io/etcd/clientv3").is_dir():
        return None
    out = tmp / "etcd_load"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": ""}
    build = subprocess.run(
        ["go", "build", "-o", str(out), "./bench/etcd_load"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        console.print("[yellow]go build failed; using the Python load generator[/]")
        console.print(build.stderr)
        return None
    return out


def etcd_put_go(binary: Path, urls: list[str], clients: int, requests: int) -> Figures:
    """The Go load generator's figures."""
    argv = [str(binary), "-endpoints", ",".join(urls), "-clients", str(clients)]
    argv += ["-n", str(requests), "-d", str(VALUE_SIZE), "-r", str(KEYSPACE)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=True)
    r = json.loads(out.stdout)
    return Figures(rps=r["rps"], p50_ms=r["p50_ms"], p99_ms=r["p99_ms"], errors=r["errors"])


def etcd_leader_url(urls: list[str]) -> str:
    """The client URL of the member that reports itself leader (HTTP/JSON gateway)."""
    for url in urls:
        req = urllib.request.Request(f"{url}/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=2.0) as resp:
            status = json.loads(resp.read())
        if status["header"]["member_id"] == status["leader"]:
            return url
    raise RuntimeError("no etcd member reports itself leader")


def etcd_put_python(urls: list[str], clients: int, requests: int) -> Figures:
    """Fallback load: keep-alive HTTP/1.1 connections to the gateway's /v3/kv/put."""
    host, port = etcd_leader_url(urls).removeprefix("http://").rsplit(":", 1)
    value = base64.b64encode(b"v" * VALUE_SIZE).decode()
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in counter:
            key = base64.b64encode(b"key:%012d" % rng.randrange(KEYSPACE)).decode()
            body = json.dumps({"key": key, "value": value}).encode()
            head = f"POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            start = time.perf_counter()
            writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
        writer.close()

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    latencies.sort()
    return Figures(
        rps=len(latencies) / elapsed,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[i]


# -- profiling -----------------------------------------------------------------------------


def profile_leader(pid: int, port: int, out_dir: Path, seconds: int) -> list[tuple[float, str]]:
    """py-spy the leader under SET load (50 clients); the top functions by self time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    load = subprocess.Popen(
        ["redis-benchmark", "-h", HOST, "-p", str(port), *SET_LOAD.args(100_000_000)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(2.0)
        folded = out_dir / "leader-set.folded"
        for fmt, path in (("raw", folded), ("flamegraph", out_dir / "leader-set.svg")):
            spy = ["py-spy", "record", "-f", fmt, "-o", str(path), "-d", str(seconds), *SPY_ARGS]
            subprocess.run([*spy, "--pid", str(pid)], check=True, capture_output=True)
    finally:
        os.kill(load.pid, signal.SIGKILL)
        load.wait()
    return self_time(folded)


def self_time(folded: Path, top: int = 25) -> list[tuple[float, str]]:
    """(percent of samples, function) for the `top` functions by self time."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        counts[stack.rsplit(";", 1)[-1]] += int(n)
        total += int(n)
    return [(100 * n / total, f) for f, n in counts.most_common(top)]


# -- reporting -----------------------------------------------------------------------------


def machine() -> str:
    """nproc, CPU model, kernel, and the load average when the run started."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, load average {load}"


def versions() -> str:
    """redis-server and etcd versions."""
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    parts = [redis.stdout.split()[2] if redis.returncode == 0 else "redis ?"]
    if shutil.which("etcd"):
        etcd = subprocess.run(["etcd", "--version"], capture_output=True, text=True)
        parts.append(etcd.stdout.splitlines()[0] if etcd.stdout else "etcd ?")
    return "redis-server " + parts[0].removeprefix("v=") + "; " + "; ".join(parts[1:])


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


HEADERS = [
    "workload",
    "system",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "Cairn/Redis",
    "Cairn/etcd",
    "Cairn CPU us/op (leader, follower)",
]


def row_cells(row: Row) -> list[list[str]]:
    """One workload as table rows: Cairn (with ratios and CPU), Redis, etcd if run."""
    out: list[list[str]] = []
    for system, f in (("Cairn", row.cairn), ("Redis", row.redis), ("etcd", row.etcd)):
        if f is None:
            if system == "Cairn":
                out.append([row.workload.name, "Cairn", "failed", "", "", "", "", ""])
            continue
        cells = ["" if out else row.workload.name, system]
        cells += [f"{f.rps:,.0f}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}"]
        if system == "Cairn":
            cells += [_f(f.ratio(row.redis), ".2f"), _f(f.ratio(row.etcd), ".2f")]
            cells.append(f"{_f(row.cpu_leader, '.0f')}, {_f(row.cpu_followers, '.0f')}")
        else:
            cells += ["", "", ""]
        out.append(cells)
    return out


def targets(rows: list[Row]) -> list[tuple[str, str, bool | None]]:
    """Issue 3's targets: (target, measured, met)."""
    by = {r.workload.name: r for r in rows}
    out: list[tuple[str, str, bool | None]] = []
    s, g = by.get("SET, 50 clients"), by.get("GET, 50 clients")
    if s and s.cairn and s.redis:
        r = s.cairn.rps / s.redis.rps
        out.append(("SET, 50 clients >= 0.2 x Redis", f"{r:.2f} x", r >= 0.2))
    if g and g.cairn and g.redis:
        r = g.cairn.rps / g.redis.rps
        out.append(("GET, 50 clients >= 0.4 x Redis", f"{r:.2f} x", r >= 0.4))
    if s and s.cairn and s.etcd:
        c, e = s.cairn.p99_ms, s.etcd.p99_ms
        out.append(("SET p99, 50 clients <= etcd put p99", f"{c:.1f} vs {e:.1f} ms", c <= e))
    return out


def print_table(rows: list[Row], etcd_how: str) -> None:
    """The results as a rich table, then the targets."""
    title = f"Cairn (3 nodes) vs redis-server (appendfsync always) vs etcd ({etcd_how})"
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("workload", "system") else "right")
    for row in rows:
        for i, cells in enumerate(row_cells(row)):
            table.add_row(*cells, end_section=i == len(row_cells(row)) - 1)
    console.print(table)
    for name, measured, met in targets(rows):
        mark = "[green]met[/]" if met else "[red]missed[/]"
        console.print(f"  {name}: {measured} {mark}")


def markdown(rows: list[Row], argv: list[str], started: str, host: str, etcd_how: str) -> str:
    """The generated section of docs/benchmarks.md."""
    lines = [
        BEGIN,
        "<!-- Generated by bench/compare.py; edits between these markers are overwritten. -->",
        "",
        f"Command: `{' '.join(argv)}`  ",
        f"Date: {started}  ",
        f"Machine: {host}  ",
        f"Versions: {versions()}; etcd load: {etcd_how}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i == 0 else "--:" for i in range(len(HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for r in rows for cells in row_cells(r)]
    notes = [f"- {r.workload.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", "Problems during the run:", "", *notes]
    lines += ["", "Targets of issue 3:", ""]
    for name, measured, met in targets(rows):
        lines.append(f"- {name}: {measured}: {'met' if met else 'missed'}")
    lines += ["", END]
    return "\n".join(lines)


def write_doc(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the generated section of docs/benchmarks.md between `begin` and `end` (or
    append one)."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


# -- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, procs: Processes, tmp: Path) -> list[Row]:
    """Start everything, measure every workload, return the rows."""
    divisor = QUICK_DIVISOR if args.quick else 1
    console.print("starting redis-server, a 3-node Cairn cluster and a 3-node etcd cluster ...")
    redis_port = start_redis(procs, tmp)
    cluster, leader = start_cairn(tmp)
    try:
        pids = {i: cluster.procs[i].pid for i in cluster.procs}
        etcd_urls = [] if args.no_etcd else start_etcd(procs, tmp)
        binary = None if args.no_etcd else etcd_load_binary(tmp)
        args.etcd_how = (
            "skipped"
            if args.no_etcd
            else "bench/etcd_load (Go, clientv3)"
            if binary
            else "Python HTTP/JSON gateway fallback"
        )
        rows = []
        for step, w in enumerate(WORKLOADS, 1):
            n = max(w.requests // divisor, 100)
            row = Row(w)
            console.print(f"[{step}/{len(WORKLOADS)}] [bold]{w.name}[/] ({n} requests)")
            leader = cluster.wait_for_leader(timeout=60.0)
            try:
                with cpu_meter(list(pids.values())) as used:
                    row.cairn = redis_benchmark(cluster.spec(leader).client_port, w.args(n))
            except RuntimeError as exc:
                row.note = f"Cairn run failed: {str(exc).splitlines()[-1]}"
            else:
                row.cpu_leader = 1e6 * used[pids[leader]] / n
                followers = [used[p] for i, p in pids.items() if i != leader]
                row.cpu_followers = 1e6 * sum(followers) / len(followers) / n
            if cluster.leader_seen_by(leader) != leader:
                row.note += (" " if row.note else "") + "The Cairn leader changed during the run."
            if row.note:
                console.print(f"[yellow]  {row.note}[/]")
            row.redis = redis_benchmark(redis_port, w.args(n))
            if w.etcd and etcd_urls:
                if binary is not None:
                    row.etcd = etcd_put_go(binary, etcd_urls, w.clients, n)
                else:
                    row.etcd = etcd_put_python(etcd_urls, w.clients, n)
            for cells in row_cells(row):
                console.print("  " + "  ".join(c for c in cells[1:] if c))
            rows.append(row)
        if args.profile and shutil.which("py-spy") is None:
            console.print("[yellow]py-spy not found (pip install py-spy): no profile[/]")
        elif args.profile:
            leader = cluster.wait_for_leader(timeout=60.0)
            cairn_port = cluster.spec(leader).client_port
            console.print(f"profiling the Cairn leader (pid {pids[leader]}) under SET load ...")
            top = profile_leader(pids[leader], cairn_port, args.profile, args.profile_seconds)
            console.print(f"flame graph and folded stacks in {args.profile}; top self time:")
            for pct, func in top:
                console.print(f"  {pct:5.1f}%  {func}")
        return rows
    finally:
        cluster.stop()


def main() -> None:
    """Parse flags, run, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"1/{QUICK_DIVISOR} of the requests")
    parser.add_argument("--no-etcd", action="store_true", help="skip the etcd cluster")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--profile", type=Path, help="py-spy the leader, output in this dir")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    args = parser.parse_args()
    ensure_tools(args.no_etcd)
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    host = machine()
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-"))

    def on_term(signum: int, frame: object) -> None:
        raise TerminatedError

    signal.signal(signal.SIGTERM, on_term)
    try:
        rows = run(args, procs, tmp)
    except (KeyboardInterrupt, TerminatedError):
        console.print("[red]interrupted; stopping every process[/]")
        sys.exit(130)
    finally:
        procs.stop_all()
        if args.keep:
            console.print(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, args.etcd_how)
    argv = ["python", "bench/compare.py", *sys.argv[1:]]
    if not args.no_doc:
        write_doc(markdown(rows, argv, started, host, args.etcd_how))
        console.print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
