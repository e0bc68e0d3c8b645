"""What `bench/compare.py` measures and how it reports it: the workloads, the figures of one
run, issue 10's targets as same-run ratios, the tables and the generated section of
`docs/benchmarks.md`, and the parsing of redis-benchmark's output and of INFO raft.

Nothing here starts a process or opens a socket, so a test can feed it made-up output
(`tests/bench/test_compare_report.py`) without running a benchmark.
"""

from __future__ import annotations

import collections
import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console

BEGIN, END = "<!-- compare.py:cluster:begin -->", "<!-- compare.py:cluster:end -->"
"""The markers of compare.py's generated section of docs/benchmarks.md."""
VALUE_SIZE = 100
KEYSPACE = 100_000
CLIENTS = 50


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
        """redis-benchmark arguments, without host, port and `--cluster`."""
        args = ["-t", self.command, "-n", str(requests), "-c", str(self.clients)]
        args += ["-d", str(VALUE_SIZE), "-r", str(KEYSPACE), "--csv"]
        if self.pipeline > 1:
            args += ["-P", str(self.pipeline)]
        return args


SET50 = Workload("SET, 50 clients", "set", CLIENTS, 1, 60_000, etcd=True)
GET50 = Workload("GET, 50 clients", "get", CLIENTS, 1, 200_000)
SET1 = Workload("SET, 1 client", "set", 1, 1, 4_000, etcd=True)
WORKLOADS = (SET50, GET50, SET1)
PIPELINED = (
    Workload("SET, 50 clients, -P 16", "set", CLIENTS, 16, 200_000),
    Workload("GET, 50 clients, -P 16", "get", CLIENTS, 16, 500_000),
)
QUICK_DIVISOR = 12


@dataclass(frozen=True, slots=True)
class Figures:
    """Throughput and latency of one run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    """Failed operations (etcd). redis-benchmark 7.0 exits at the first error reply, so a
    run of it that finished had none."""
    masters: tuple[str, ...] = ()
    """With `--cluster`: the masters redis-benchmark found (host:port)."""

    def ratio(self, other: Figures | None) -> float | None:
        """This throughput over `other`'s."""
        if other is None or other.rps <= 0:
            return None
        return self.rps / other.rps


@dataclass(slots=True)
class Row:
    """One workload's figures on every system, and what Cairn's nodes spent on it."""

    workload: Workload
    cairn: Figures | None = None
    redis: Figures | None = None
    etcd: Figures | None = None
    cpu_us: dict[int, float] = field(default_factory=dict)
    """Node id -> CPU microseconds per operation of that node's process."""
    writes: dict[int, int] = field(default_factory=dict)
    """Region id -> how far its commit index moved during the Cairn run."""
    load: float = 0.0
    """The 1-minute load average when the row started."""
    note: str = ""
    """What went wrong on Cairn's side, if anything (a failed run, a leader change)."""


@dataclass
class Report:
    """Everything one run measured, and how."""

    argv: list[str]
    started: str
    host: str
    code: str
    rows: list[Row] = field(default_factory=list)
    leaders: dict[int, int] = field(default_factory=dict)
    idle: dict[int, float] = field(default_factory=dict)
    """Node id -> percent of one core used while idle (before the loads)."""
    versions: str = ""
    """redis-server's and etcd's versions."""
    etcd_how: str = "skipped"
    end_load: str = ""
    minutes: float = 0.0


# -- parsing: INFO raft, redis-benchmark's output ------------------------------------------


def agreed_leaders(views: list[dict[int, dict[str, object]]], nodes: int) -> dict[int, int]:
    """Region id -> leader node, when all `nodes` nodes answered and agree on a leader for
    every region they host; {} otherwise."""
    if len(views) < nodes or not all(views):
        return {}
    leaders: dict[int, int] = {}
    for view in views:
        for region, fields in view.items():
            leader = int(str(fields.get("leader", 0)))
            if leader == 0 or leaders.setdefault(region, leader) != leader:
                return {}
    return leaders


def region_commits(views: list[dict[int, dict[str, object]]]) -> dict[int, int]:
    """Region id -> the highest commit index any node reports for it."""
    out: dict[int, int] = {}
    for view in views:
        for region, fields in view.items():
            out[region] = max(out.get(region, 0), int(str(fields.get("commit", 0))))
    return out


def spread(writes: dict[int, int]) -> bool:
    """Whether every region took at least half its even share of the writes (a load from
    many clients over every master; one client loads one master only)."""
    total = sum(writes.values())
    return bool(writes) and total > 0 and min(writes.values()) >= total / len(writes) / 2


def balanced(leaders: dict[int, int], nodes: int) -> bool:
    """Whether every node leads as many regions as any other, give or take one."""
    counts = collections.Counter(leaders.values())
    led = [counts.get(n, 0) for n in range(1, nodes + 1)]
    return max(led) - min(led) <= 1


MASTER_LINE = re.compile(r"^Master \d+: (?:[0-9a-f]{40} )?(\S+:\d+)$")


def parse_benchmark(stdout: str) -> Figures:
    """redis-benchmark's `--csv` output: the last CSV result row (rps, p50, p99) and the
    masters listed with `--cluster`; ValueError when there is no result row."""
    lines = stdout.splitlines()
    rows = [r for r in csv.reader(lines) if len(r) == 8 and r[0] != "test"]
    if not rows:
        raise ValueError("no CSV result row in redis-benchmark's output")
    row = rows[-1]
    masters = tuple(m.group(1) for m in map(MASTER_LINE.match, lines) if m is not None)
    return Figures(float(row[1]), float(row[4]), float(row[6]), masters=masters)


# -- reporting -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One of issue 10's targets as measured in this run; `met` None: not measured."""

    goal: str
    measured: str
    met: bool | None


def targets(rows: Sequence[Row]) -> list[Target]:
    """Issue 10's four targets, each a ratio of two figures of this same run."""
    by = {r.workload.name: r for r in rows}
    s50, g50, s1 = by.get(SET50.name), by.get(GET50.name), by.get(SET1.name)
    out = []
    goal = "SET at 50 clients >= 1.5 x etcd's put rate at 50 clients"
    if s50 and s50.cairn and s50.etcd and s50.etcd.rps > 0:
        r = s50.cairn.rps / s50.etcd.rps
        seen = f"{r:.2f} x ({s50.cairn.rps:,.0f} vs {s50.etcd.rps:,.0f}/s)"
        out.append(Target(goal, seen, r >= 1.5))
    else:
        out.append(Target(goal, "not measured", None))
    goal = "SET p99 at 50 clients <= etcd's put p99 at 50 clients"
    if s50 and s50.cairn and s50.etcd and s50.etcd.p99_ms > 0:
        c, e = s50.cairn.p99_ms, s50.etcd.p99_ms
        out.append(Target(goal, f"{c / e:.2f} x ({c:.2f} vs {e:.2f} ms)", c <= e))
    else:
        out.append(Target(goal, "not measured", None))
    goal = "SET p50 with 1 client <= 1.5 x etcd's put p50 with 1 client"
    if s1 and s1.cairn and s1.etcd and s1.etcd.p50_ms > 0:
        c, e = s1.cairn.p50_ms, s1.etcd.p50_ms
        out.append(Target(goal, f"{c / e:.2f} x ({c:.2f} vs {e:.2f} ms)", c / e <= 1.5))
    else:
        out.append(Target(goal, "not measured", None))
    goal = "GET at 50 clients >= 0.6 x redis-server's GET"
    if g50 and g50.cairn and g50.redis and g50.redis.rps > 0:
        r = g50.cairn.rps / g50.redis.rps
        seen = f"{r:.2f} x ({g50.cairn.rps:,.0f} vs {g50.redis.rps:,.0f}/s)"
        out.append(Target(goal, seen, r >= 0.6))
    else:
        out.append(Target(goal, "not measured", None))
    return out


def verdict(met: bool | None) -> str:
    """A target's outcome in words."""
    return "not measured" if met is None else "met" if met else "not met"


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


FIGURE_HEADERS = ["workload", "system", "ops/s", "p50 ms", "p99 ms", "errors", "load (1 min)"]


def figure_cells(row: Row) -> list[list[str]]:
    """One workload's rows of the figures table: Cairn, Redis, etcd (those that ran)."""
    out: list[list[str]] = []
    for system, f in (("Cairn", row.cairn), ("redis-server", row.redis), ("etcd", row.etcd)):
        head = ["" if out else row.workload.name, system]
        if f is None:
            if system == "Cairn":
                out.append([*head, "failed", "", "", "", f"{row.load:.1f}"])
            continue
        cells = [f"{f.rps:,.0f}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", str(f.errors)]
        out.append([*head, *cells, f"{row.load:.1f}" if system == "Cairn" else ""])
    return out


def cpu_headers(nodes: Sequence[int]) -> list[str]:
    """The header of the Cairn table: per-node CPU, their sum (also less what the nodes use
    idle), commits per region, masters."""
    per_node = [f"node {n} CPU µs/op" for n in nodes]
    sums = ["all nodes", "all nodes less idle"]
    return ["workload", *per_node, *sums, "commits per region", "masters"]


def less_idle(row: Row, idle: dict[int, float]) -> float | None:
    """All nodes' CPU µs per operation less what they use idle over the run's length
    (`idle`: node -> percent of a core): at one client the fixed cost per second (ticks,
    liveness, background walks) is most of the per-SET figure."""
    if not row.cpu_us or row.cairn is None or row.cairn.rps <= 0 or not idle:
        return None
    idle_cores = sum(idle.get(n, 0.0) for n in row.cpu_us) / 100
    return sum(row.cpu_us.values()) - 1e6 * idle_cores / row.cairn.rps


def cpu_cells(row: Row, nodes: Sequence[int], idle: dict[int, float]) -> list[str]:
    """One workload's row of the Cairn table."""
    cpu = [_f(row.cpu_us.get(n), ",.0f") for n in nodes]
    total = _f(sum(row.cpu_us.values()), ",.0f") if row.cpu_us else "-"
    writes = ", ".join(f"r{r}: {n:,}" for r, n in sorted(row.writes.items())) or "-"
    masters = str(len(row.cairn.masters)) if row.cairn else "-"
    return [row.workload.name, *cpu, total, _f(less_idle(row, idle), ",.0f"), writes, masters]


def markdown(report: Report) -> str:
    """The generated section of docs/benchmarks.md."""
    nodes = sorted({n for r in report.rows for n in r.cpu_us}) or [1, 2, 3]
    leaders = ", ".join(f"region {r} on node {n}" for r, n in sorted(report.leaders.items()))
    lines = [
        BEGIN,
        "<!-- Generated by bench/compare.py; edits between these markers are overwritten. -->",
        "## Issue 10's benchmark: `redis-benchmark --cluster` against `cairn dev`'s cluster",
        "",
        f"Command: `{' '.join(report.argv)}`  ",
        f"Date: {report.started}, {report.minutes:.0f} minutes  ",
        f"Machine: {report.host}; at the end {report.end_load}  ",
        f"Versions: {report.versions}  ",
        f"Cairn code: {report.code}  ",
        f"Cairn: `cairn dev`'s default cluster ({len(nodes)} nodes, one region each), {leaders}  ",
        f"etcd: 3 members, load: {report.etcd_how}",
        "",
        "| " + " | ".join(FIGURE_HEADERS) + " |",
        "|" + "|".join("---" if i < 2 else "--:" for i in range(len(FIGURE_HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(c) + " |" for r in report.rows for c in figure_cells(r)]
    headers = cpu_headers(nodes)
    lines += ["", "Cairn's nodes (CPU time from /proc around each run, per operation):", ""]
    lines += ["| " + " | ".join(headers) + " |"]
    lines += ["|" + "|".join("---" if i == 0 else "--:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(cpu_cells(r, nodes, report.idle)) + " |" for r in report.rows]
    if report.idle:
        idle = ", ".join(f"node {n} {pct:.1f} %" for n, pct in sorted(report.idle.items()))
        lines += ["", f"Idle, before the loads, each node used (of one core): {idle}."]
    notes = [f"- {r.workload.name}: {r.note}" for r in report.rows if r.note]
    if notes:
        lines += ["", "Problems during the run:", "", *notes]
    lines += ["", "Issue 10's targets, as ratios within this run:", ""]
    lines += [f"- {t.goal}: {t.measured}: **{verdict(t.met)}**" for t in targets(report.rows)]
    lines += ["", END]
    return "\n".join(lines)


def print_report(report: Report, console: Console) -> None:
    """The figures, Cairn's CPU per node and the targets, on the console."""
    console.print(f"[bold]figures[/] (etcd load: {report.etcd_how})")
    for row in report.rows:
        for cells in figure_cells(row):
            console.print("  " + "  ".join(f"{c:>14}" for c in cells), soft_wrap=True)
    nodes = sorted({n for r in report.rows for n in r.cpu_us}) or [1, 2, 3]
    console.print("[bold]Cairn[/]: " + " | ".join(cpu_headers(nodes)), soft_wrap=True)
    for row in report.rows:
        console.print("  " + " | ".join(cpu_cells(row, nodes, report.idle)), soft_wrap=True)
    if report.idle:
        idle = ", ".join(f"node {n} {pct:.1f} %" for n, pct in sorted(report.idle.items()))
        console.print(f"idle, of one core: {idle}")
    console.print("[bold]issue 10's targets[/] (same-run ratios)")
    for t in targets(report.rows):
        colour = "yellow" if t.met is None else "green" if t.met else "red"
        console.print(f"  {t.goal}: {t.measured} [{colour}]{verdict(t.met)}[/]", soft_wrap=True)
