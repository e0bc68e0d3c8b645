"""Cairn (`cairn dev`'s cluster, `redis-benchmark --cluster`) against etcd and redis-server.

    python bench/compare.py            # full run, several minutes
    python bench/compare.py --quick    # 1/12 of the requests, about two minutes
    python bench/compare.py --pipelined          # also SET and GET with -P 16
    python bench/compare.py --profile /tmp/prof  # also py-spy node 1 under SET load
    python bench/compare.py --cairn-src /tmp/base/src --no-doc   # the nodes run other code

What it does, all on 127.0.0.1 with temporary data directories:

1. starts the cluster `cairn dev` starts by default (`cairn.cli.dev.plan_dev_cluster`: 3
   nodes, one region per node, production timing; on dev's ports 7001.. when they are
   free, else on the first free block above), waits until every region has a leader all
   nodes agree on and, for up to `--balance-timeout` seconds, until the leaders are on
   distinct nodes (the placement driver's leader balance: 3 masters for redis-benchmark);
   then one `redis-server --appendonly yes --appendfsync always` and a 3-member etcd
   cluster (Debian's etcd-server);
2. for each workload, back to back: `redis-benchmark --cluster` against Cairn (it reads
   CLUSTER NODES and sends each client's keys to one master: `key:{tag}:<random>`, the tag
   naming a slot of that master, clients dealt round-robin over the masters), plain
   redis-benchmark against redis-server, and for SET the same put load against etcd's
   leader (`bench/etcd_load_driver.py`): SET with 100-byte values and random keys
   (`-d 100 -r 100000`) at 50 clients, GET at 50 clients, SET at 1 client;
3. reads each Cairn node's CPU time from /proc around each Cairn run (CPU microseconds
   per operation, node by node), and each region's commit index (INFO raft) before and
   after, so the table shows that the writes really spread over all regions;
4. prints the figures and issue 10's four targets as same-run ratios (met / not met), and
   rewrites its generated section of `docs/benchmarks.md` (markers `BEGIN`/`END`; appended
   at the end of the file when absent). Every process it started is stopped by PID at the
   end, also on failure, Ctrl-C or SIGTERM.

The machine is small and shared: every row records the load average when it started, and
the CPU time per operation is the figure to compare between code versions.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

import etcd_load_driver as etcd
from compare_report import (
    BEGIN,
    END,
    KEYSPACE,
    PIPELINED,
    QUICK_DIVISOR,
    SET50,
    VALUE_SIZE,
    WORKLOADS,
    Report,
    Row,
    agreed_leaders,
    balanced,
    figure_cells,
    markdown,
    parse_benchmark,
    print_report,
    region_commits,
    spread,
)
from compare_report import (
    Figures as Figures,  # re-exported: the other bench scripts import it from here
)

from cairn.cli.dev import DEFAULT_BASE_PORT, DEFAULT_NODES, busy_dev_ports, plan_dev_cluster
from cairn.runtime.local_cluster import LocalCluster, free_ports

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SPY_ARGS = ("-r", "250", "--nonblocking")
BENCH_TIMEOUT = 1800.0
"""The longest one redis-benchmark run may take (a bound, not an expectation)."""

console = Console()


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


def ensure_tools(no_etcd: bool, go: bool = False) -> None:
    """Install redis-server/redis-tools and etcd-server from Debian when missing (as root);
    with `go`, also Go and etcd's client sources for `bench/etcd_load`, when root can (the
    Python fallback load is used otherwise)."""
    wanted = {"redis-server": "redis-server", "redis-benchmark": "redis-tools"}
    if not no_etcd:
        wanted["etcd"] = "etcd-server"
    missing = sorted({pkg for tool, pkg in wanted.items() if shutil.which(tool) is None})
    optional = []
    if go and not no_etcd and os.geteuid() == 0:
        if shutil.which("go") is None:
            optional.append("golang-go")
        if not etcd.CLIENTV3.is_dir():
            optional.append("golang-etcd-server-dev")
    if not missing and not optional:
        return
    if missing and os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: run apt-get install -y {' '.join(missing)}")
    console.print(f"installing {', '.join(missing + optional)} ...")
    if missing:
        subprocess.run(["apt-get", "install", "-y", *missing], check=True, capture_output=True)
    if optional:
        done = subprocess.run(["apt-get", "install", "-y", *optional], capture_output=True)
        if done.returncode != 0:
            console.print("[yellow]could not install Go: the etcd load will be Python's[/]")


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


def start_cairn(tmp: Path) -> tuple[LocalCluster, int]:
    """A 3-node, one-region Cairn cluster with the default (production) timing; its
    leader's id (what `bench/set_cpu.py` and the other scripts measure)."""
    cluster = LocalCluster.plan(tmp / "cairn", 3)
    cluster.start()
    leader = cluster.wait_for_leader(timeout=60.0)
    wait_until(lambda: resp_ping(cluster.spec(leader).client_port), "the Cairn leader")
    return cluster, leader


# -- `cairn dev`'s cluster -----------------------------------------------------------------


def dev_base_port(nodes: int = DEFAULT_NODES) -> int:
    """`cairn dev`'s base port when its ports are free, else the first free block of 100
    above it (another developer's `cairn dev` may hold 7001..)."""
    for base in range(DEFAULT_BASE_PORT, DEFAULT_BASE_PORT + 9000, 100):
        if not busy_dev_ports(nodes, base):
            return base
    raise RuntimeError("no free block of ports for a dev cluster")


def start_dev_cluster(tmp: Path, cairn_src: Path | None = None) -> LocalCluster:
    """Start the cluster `cairn dev` starts by default (its planning code, not a copy), its
    nodes running `cairn_src`'s code when given (for a before/after run)."""
    cluster = plan_dev_cluster(tmp / "cairn-data", DEFAULT_NODES, dev_base_port())
    if cairn_src is not None:
        cluster.env["PYTHONPATH"] = str(cairn_src.resolve())
    cluster.start()
    return cluster


def region_views(cluster: LocalCluster) -> list[dict[int, dict[str, object]]]:
    """Each running node's INFO raft, region id -> that region's fields (role, leader,
    commit, ...); a node that cannot be asked is left out."""
    views = []
    for spec in cluster.specs:
        if not cluster.running(spec.node_id):
            continue
        try:
            with redis.Redis(host=HOST, port=spec.client_port, socket_timeout=2.0) as client:
                info = client.info("raft")
        except redis.RedisError:
            continue
        views.append(
            {
                int(k.removeprefix("raft_region")): v
                for k, v in info.items()
                if k.startswith("raft_region") and k[11:].isdigit() and isinstance(v, dict)
            }
        )
    return views


def wait_for_regions(
    cluster: LocalCluster, timeout: float, balance_timeout: float
) -> dict[int, int]:
    """Block until every region has a leader all nodes agree on, then (at most
    `balance_timeout` more seconds) until each node leads as many regions as the others
    give or take one; the region -> leader map (possibly unbalanced)."""
    nodes = len(cluster.specs)
    deadline = time.monotonic() + timeout
    leaders: dict[int, int] = {}
    while not leaders:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no agreed leader for every region; logs in {cluster.root}")
        if not any(cluster.running(s.node_id) for s in cluster.specs):
            raise RuntimeError(f"every node exited; logs in {cluster.root}")
        time.sleep(0.2)
        leaders = agreed_leaders(region_views(cluster), nodes)
    deadline = time.monotonic() + balance_timeout
    while not balanced(leaders, nodes) and time.monotonic() < deadline:
        time.sleep(0.5)
        leaders = agreed_leaders(region_views(cluster), nodes) or leaders
    return leaders


# -- measuring -----------------------------------------------------------------------------


def redis_benchmark(port: int, args: list[str], cluster: bool = False) -> Figures:
    """Run redis-benchmark against `port` (`--cluster`: the cluster `port` belongs to)."""
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), *(["--cluster"] if cluster else [])]
    argv += args
    out = subprocess.run(argv, capture_output=True, text=True, timeout=BENCH_TIMEOUT)
    try:
        figures = parse_benchmark(out.stdout)
    except ValueError:
        figures = None
    if out.returncode != 0 or figures is None:
        why = (out.stderr.strip() or out.stdout.strip())[-500:]
        raise RuntimeError(f"{' '.join(argv)} failed: {why}")
    return figures


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


@dataclass
class EtcdLoad:
    """How this run loads etcd: the Go generator when it builds, else Python's."""

    urls: list[str]
    binary: Path | None
    how: str

    def put(self, clients: int, requests: int) -> Figures:
        """`requests` puts by `clients` clients to etcd's leader."""
        if self.binary is not None:
            f = etcd.put_go(self.binary, self.urls, clients, requests, VALUE_SIZE, KEYSPACE)
        else:
            f = etcd.put_python(self.urls, clients, requests, VALUE_SIZE, KEYSPACE)
        return Figures(f.rps, f.p50_ms, f.p99_ms, f.errors)


def start_etcd_load(procs: Processes, tmp: Path, python_only: bool) -> EtcdLoad:
    """A 3-member etcd cluster and the generator that loads it."""
    urls = etcd.start_etcd(procs.start, tmp)
    binary, why = (None, "--python-etcd") if python_only else etcd.build_load_binary(tmp)
    if binary is not None:
        return EtcdLoad(urls, binary, "bench/etcd_load (Go, clientv3, puts to the leader)")
    console.print(f"[yellow]etcd load: Python HTTP/JSON gateway fallback ({why})[/]")
    return EtcdLoad(urls, None, f"Python HTTP/JSON gateway fallback to the leader ({why})")


# -- profiling -----------------------------------------------------------------------------


def profile_node(
    pid: int, port: int, out_dir: Path, seconds: int, cluster: bool = True
) -> list[tuple[float, str]]:
    """py-spy one node under SET load (50 clients); the top functions by self time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), *(["--cluster"] if cluster else [])]
    load = subprocess.Popen(
        [*argv, *SET50.args(100_000_000)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(2.0)
        folded = out_dir / "node-set.folded"
        for fmt, path in (("raw", folded), ("flamegraph", out_dir / "node-set.svg")):
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
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    parts = [redis_v.stdout.split()[2] if redis_v.returncode == 0 else "redis ?"]
    if shutil.which("etcd"):
        etcd_v = subprocess.run(["etcd", "--version"], capture_output=True, text=True)
        parts.append(etcd_v.stdout.splitlines()[0] if etcd_v.stdout else "etcd ?")
    return "redis-server " + parts[0].removeprefix("v=") + "; " + "; ".join(parts[1:])


def code_version(cairn_src: Path | None) -> str:
    """Which Cairn code the nodes ran: this tree's commit, or `--cairn-src`."""
    if cairn_src is not None:
        return f"`{cairn_src}` (--cairn-src)"
    head = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %cd", "--date=short"],
        capture_output=True,
        text=True,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    mark = " (with uncommitted changes)" if dirty.stdout.strip() else ""
    return (head.stdout.strip() or "unknown") + mark


def write_doc(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the generated section of docs/benchmarks.md between `begin` and `end` (or
    append one at the end of the file)."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


# -- main ----------------------------------------------------------------------------------


def measure_cairn(row: Row, cluster: LocalCluster, port: int, n: int) -> None:
    """Run the workload against Cairn with `--cluster`, reading each node's CPU time and
    each region's commit index around it."""
    pids = {i: p.pid for i, p in cluster.procs.items()}
    nodes = len(cluster.specs)
    before_views = region_views(cluster)
    before = agreed_leaders(before_views, nodes)
    try:
        with cpu_meter(list(pids.values())) as used:
            row.cairn = redis_benchmark(port, row.workload.args(n), cluster=True)
    except RuntimeError as exc:
        row.note = f"Cairn run failed: {str(exc).splitlines()[-1]}"
        return
    after_views = region_views(cluster)
    row.cpu_us = {i: 1e6 * used[pid] / n for i, pid in pids.items()}
    first, last = region_commits(before_views), region_commits(after_views)
    row.writes = {r: last[r] - first.get(r, 0) for r in last}
    notes = []
    after = agreed_leaders(after_views, nodes)
    if not before or not after:
        notes.append("the nodes did not agree on every region's leader before or after the run")
    elif after != before:
        notes.append(f"a region's leader changed during the run ({before} -> {after})")
    if row.workload.command == "set" and row.workload.clients >= nodes and not spread(row.writes):
        notes.append(f"the writes did not spread over the regions: {row.writes}")
    if len(row.cairn.masters) != nodes:
        notes.append(f"redis-benchmark saw {len(row.cairn.masters)} masters, not {nodes}")
    row.note = "; ".join(notes)


def measure_idle(cluster: LocalCluster, seconds: float) -> dict[int, float]:
    """Percent of one core each node uses over `seconds` with no client load."""
    pids = {i: p.pid for i, p in cluster.procs.items()}
    with cpu_meter(list(pids.values())) as used:
        time.sleep(seconds)
    return {i: 100 * used[pid] / seconds for i, pid in pids.items()}


def run(args: argparse.Namespace, procs: Processes, tmp: Path, report: Report) -> None:
    """Start everything, measure every workload into `report.rows`."""
    divisor = QUICK_DIVISOR if args.quick else 1
    console.print("starting `cairn dev`'s cluster, redis-server and a 3-member etcd ...")
    cluster = start_dev_cluster(tmp, args.cairn_src)
    try:
        report.leaders = wait_for_regions(cluster, 90.0, args.balance_timeout)
        if not balanced(report.leaders, len(cluster.specs)):
            console.print(f"[yellow]leaders not balanced: {report.leaders}[/]")
        port = cluster.specs[0].client_port
        redis_port = start_redis(procs, tmp)
        load = None if args.no_etcd else start_etcd_load(procs, tmp, args.python_etcd)
        report.etcd_how = load.how if load else "skipped (--no-etcd)"
        if args.idle > 0:
            report.idle = measure_idle(cluster, args.idle)
        workloads = WORKLOADS + (PIPELINED if args.pipelined else ())
        for step, w in enumerate(workloads, 1):
            n = max(w.requests // divisor, 100)
            row = Row(w, load=os.getloadavg()[0])
            console.print(f"[{step}/{len(workloads)}] [bold]{w.name}[/] ({n} requests)")
            measure_cairn(row, cluster, port, n)
            if row.note:
                console.print(f"[yellow]  {row.note}[/]")
            row.redis = redis_benchmark(redis_port, w.args(n))
            if w.etcd and load is not None:
                row.etcd = load.put(w.clients, n)
            for cells in figure_cells(row):
                console.print("  " + "  ".join(c for c in cells[1:] if c))
            report.rows.append(row)
        if args.profile:
            profile(cluster, port, args)
    finally:
        cluster.stop()


def profile(cluster: LocalCluster, port: int, args: argparse.Namespace) -> None:
    """`--profile`: py-spy node 1 under a `--cluster` SET load."""
    if shutil.which("py-spy") is None:
        console.print("[yellow]py-spy not found (pip install py-spy): no profile[/]")
        return
    pid = cluster.procs[1].pid
    console.print(f"profiling node 1 (pid {pid}) under SET load ...")
    top = profile_node(pid, port, args.profile, args.profile_seconds)
    console.print(f"flame graph and folded stacks in {args.profile}; top self time:")
    for pct, func in top:
        console.print(f"  {pct:5.1f}%  {func}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"1/{QUICK_DIVISOR} of the requests")
    parser.add_argument("--pipelined", action="store_true", help="also SET/GET with -P 16")
    parser.add_argument("--no-etcd", action="store_true", help="skip the etcd cluster")
    parser.add_argument(
        "--python-etcd", action="store_true", help="load etcd from Python, not bench/etcd_load"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument(
        "--balance-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for one region leader per node",
    )
    parser.add_argument("--cairn-src", type=Path, help="run the nodes from this src directory")
    parser.add_argument("--profile", type=Path, help="py-spy node 1, output in this dir")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    return parser.parse_args(argv)


def main() -> None:
    """Parse flags, run, print and record."""
    args = parse_args()
    ensure_tools(args.no_etcd, go=not args.python_etcd)
    started = datetime.datetime.now(datetime.UTC)
    report = Report(
        argv=["python", "bench/compare.py", *sys.argv[1:]],
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        host=machine(),
        code=code_version(args.cairn_src),
        versions=versions(),
    )
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-"))

    def on_term(signum: int, frame: object) -> None:
        raise TerminatedError

    signal.signal(signal.SIGTERM, on_term)
    try:
        run(args, procs, tmp, report)
    except (KeyboardInterrupt, TerminatedError):
        console.print("[red]interrupted; stopping every process[/]")
        sys.exit(130)
    finally:
        procs.stop_all()
        if args.keep:
            console.print(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report.end_load = "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    report.minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
    print_report(report, console)
    if not args.no_doc:
        write_doc(markdown(report))
        console.print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
