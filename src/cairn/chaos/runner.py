"""The chaos runner: real nodes, concurrent clients, faults on a seeded schedule, checks.

Theory of operation. `ChaosRun.run()`:

1. sets up the network (namespaces if `ip netns add` works, else loopback proxies; the
   choice is stated in the result), writes the configs and starts N `cairn server`
   processes with failpoints enabled, and waits for a leader;
2. starts the workloads (register, set, counter, queue, stream, the transactions'
   bank and append of `cairn.chaos.txn_workloads`, and `tso`, timestamps taken through
   the admin API, `cairn.chaos.tso_workload`: worker threads recording histories);
3. injects the faults of `faults.schedule(seed, ...)` one at a time, healing each after
   its duration, and records each as a `FaultRecord` (target, times, what was observed);
   region faults (split, merge, move, transfer, drain: `cairn.chaos.region_faults`) go
   through the admin API, which the nodes then serve, on a cluster founded with several
   regions (`ChaosConfig.regions`) so that the workloads' keys lie in different ones;
   placement faults (`cairn.chaos.tso_faults`) move the placement group's leadership;
4. heals everything, restarts every node, lets the clients run a few more seconds, stops
   them and reads the final state of the set and the counter, drains the queues and
   reads the streams and their groups, the bank's balances and the appended lists;
5. checks every history (linearizability for the register, the set, counter, queue and
   stream rules, the bank's totals, Elle's cycles for append, the timestamps' order)
   and writes the histories (JSON lines), `faults.json`, `summary.json` and `report.html`.

Everything the run creates (processes, proxies, namespaces) is removed in a `finally`
block and by an `atexit` hook, so Ctrl-C or a crash of the runner leaves nothing behind;
node logs stay in the output directory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from cairn.admin.client import AdminClientError
from cairn.chaos import corruption
from cairn.chaos.cluster import ChaosCluster
from cairn.chaos.cross_region import count_cross_region, founding_region
from cairn.chaos.faults import (
    ALL_FAULTS,
    PLACEMENT_FAULTS,
    REGION_FAULTS,
    FaultKind,
    FaultRecord,
    Planned,
    schedule,
)
from cairn.chaos.network import LoopbackNetwork, NetnsNetwork, Network, netns_available
from cairn.chaos.region_faults import RegionFaults
from cairn.chaos.stream_workload import StreamWorkload
from cairn.chaos.tso_faults import PlacementFaults
from cairn.chaos.tso_workload import TsoWorkload
from cairn.chaos.txn_workloads import AppendWorkload, BankWorkload, TxnWorkload
from cairn.chaos.workload import (
    CheckResult,
    CounterWorkload,
    QueueWorkload,
    RegisterWorkload,
    SetWorkload,
    Workload,
)
from cairn.check.history import OpType, write_jsonl
from cairn.runtime.plants import PLANT_ENV, restore_power_loss_image

WORKLOADS = ("register", "set", "counter", "queue", "stream", "bank", "append", "tso")
REGION_RUN_REGIONS = 4
"""Regions a run with region faults is founded with unless told (`ChaosConfig.regions`)."""
REGION_RUN_KEYS = ("r0", "r1", "r2", "r3")
"""Register keys of a run with several regions: one in each quarter of the slots."""
SKEW_RANGE = (0.02, 0.08)
"""Clock-skew rates stay inside the lease's drift margin (5 of 40 election ticks)."""


@dataclass(frozen=True)
class ChaosConfig:
    """What to run. `network` is "auto", "netns" or "loopback"; `plant` a planted bug."""

    out: Path
    nodes: int = 3
    duration: float = 60.0
    seed: int = 1
    faults: frozenset[FaultKind] = ALL_FAULTS
    workloads: tuple[str, ...] = ("register",)
    workers: int = 4
    network: str = "auto"
    plant: str | None = None
    keep_data: bool = False
    final_quiet: float = 3.0
    regions: int = 0
    """Regions to found the cluster with; 0: 1, or `REGION_RUN_REGIONS` with region faults."""

    @property
    def region_faults(self) -> bool:
        """Whether any region fault is chosen (the admin API is then served)."""
        return bool(self.faults & REGION_FAULTS)

    @property
    def admin_api(self) -> bool:
        """Whether the nodes serve their admin API (region and placement faults, `tso`)."""
        return self.region_faults or bool(self.faults & PLACEMENT_FAULTS) or "tso" in self.workloads

    @property
    def founding_regions(self) -> int:
        """The regions the cluster is founded with."""
        if self.regions:
            return self.regions
        return REGION_RUN_REGIONS if self.region_faults else 1


@dataclass
class ChaosResult:
    """What a run did and found; `ok` when no check and no fault found an anomaly."""

    config: ChaosConfig
    network: str
    plan: list[Planned]
    faults: list[FaultRecord]
    checks: list[CheckResult]
    histories: dict[str, Path]
    ops: dict[str, dict[str, int]]
    started: int
    ended: int
    report: Path | None = None
    errors: list[str] = field(default_factory=list)
    cross_region: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per transaction workload: acknowledged operations, and those whose keys lie in
    several founding regions (`cairn.chaos.cross_region`)."""

    @property
    def anomalies(self) -> list[str]:
        """Every anomaly, one line each."""
        found = [f"{c.name}: {a}" for c in self.checks for a in c.anomalies]
        found += [f"{f.kind.value} {f.target}: {p}" for f in self.faults for p in f.problems]
        return found + self.errors

    @property
    def lost(self) -> int:
        """Acknowledged writes missing from the final state (set, counter, queue)."""
        return sum(c.lost for c in self.checks)

    @property
    def ok(self) -> bool:
        """No anomaly at all."""
        return not self.anomalies

    def region_fault_counts(self) -> dict[str, dict[str, int]]:
        """Per region fault kind: how many were injected, and how each ended."""
        counts: dict[str, dict[str, int]] = {}
        for f in self.faults:
            if f.kind in REGION_FAULTS:
                row = counts.setdefault(f.kind.value, {"injected": 0})
                row["injected"] += 1
                row[f.outcome or "unknown"] = row.get(f.outcome or "unknown", 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        """The JSON summary written as `summary.json`."""
        cfg = self.config
        return {
            "verdict": "ok" if self.ok else "anomalies",
            "seed": cfg.seed,
            "nodes": cfg.nodes,
            "duration_s": cfg.duration,
            "faults_enabled": sorted(f.value for f in cfg.faults),
            "workloads": list(cfg.workloads),
            "plant": cfg.plant,
            "network": self.network,
            "schedule": [p.describe() for p in self.plan],
            "faults_injected": len(self.faults),
            "regions_at_start": cfg.founding_regions,
            "region_faults": self.region_fault_counts(),
            "cross_region": self.cross_region,
            "operations": self.ops,
            "checks": [
                {"workload": c.name, "ok": c.ok, "details": c.details, "lost": c.lost}
                for c in self.checks
            ],
            "anomalies": self.anomalies,
            "acknowledged_writes_lost": self.lost,
            "histories": {k: str(v) for k, v in self.histories.items()},
            "report": str(self.report) if self.report else None,
        }


Progress = Callable[[float, str], None]
"""(seconds into the run, message): called as the run goes."""


class ChaosRun:
    """One chaos run; see the module docstring."""

    def __init__(self, config: ChaosConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress or (lambda t, m: None)
        self.rng = random.Random(config.seed * 7919 + 1)
        self.run_id = f"cairn-{os.getpid() % 4096:03x}{random.randrange(4096):03x}"
        self.network: Network = self._choose_network()
        env = {PLANT_ENV: config.plant} if config.plant else {}
        root = config.out / "cluster"
        self.cluster = ChaosCluster(
            root,
            config.nodes,
            self.network,
            env=env,
            admin_api=config.admin_api,
            regions=config.founding_regions,
        )
        self.region_faults = RegionFaults(self.cluster, self.rng)
        self.placement_faults = PlacementFaults(self.cluster, self.rng)
        self.workloads: list[Workload] = []
        self.records: list[FaultRecord] = []
        self.t0 = time.monotonic_ns()
        self._cleaned = False

    def _choose_network(self) -> Network:
        cfg = self.config
        why: str | None = "loopback requested"
        if cfg.network in ("auto", "netns"):
            why = netns_available(f"{self.run_id}-probe")
            if why is None:
                subnet = (200 + self.rng.randrange(50), self.rng.randrange(256))
                return NetnsNetwork(cfg.nodes, self.run_id, subnet)
            if cfg.network == "netns":
                raise RuntimeError(f"network namespaces are not available: {why}")
        self.fallback_reason = why
        return LoopbackNetwork(cfg.nodes)

    @property
    def network_description(self) -> str:
        """The network mechanism, as stated in the output."""
        text = self.network.description
        reason = getattr(self, "fallback_reason", None)
        if isinstance(self.network, LoopbackNetwork) and reason:
            text += f" [no namespaces: {reason}]"
        return text

    def now(self) -> float:
        """Seconds since the run started."""
        return (time.monotonic_ns() - self.t0) / 1e9

    def say(self, message: str) -> None:
        """Report progress."""
        self.progress(self.now(), message)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> ChaosResult:
        """Run, check, report; always cleans up."""
        cfg = self.config
        cfg.out.mkdir(parents=True, exist_ok=True)
        atexit.register(self.cleanup)
        old_handler = _sigterm_as_interrupt()
        plan = schedule(cfg.seed, cfg.duration, cfg.faults)
        try:
            self._start_cluster()
            self._start_workloads()
            self.t0 = time.monotonic_ns()
            self.say(f"{len(plan)} faults scheduled; network: {self.network.mode}")
            for planned in plan:
                self._wait_until(planned.at)
                self._inject(planned)
            self._wait_until(cfg.duration - cfg.final_quiet)
            finals = self._finish()
            ended = time.monotonic_ns()
            result = self._result(plan, finals, ended)
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, old_handler)
            self.cleanup()
        from cairn.chaos.report import write_report

        result.report = write_report(result, self.workloads, cfg.out / "report.html", self.t0)
        (cfg.out / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
        return result

    def _start_cluster(self) -> None:
        self.network.setup()
        self.cluster.write_configs()
        for node in self.cluster.ids:
            self.cluster.start(node)
        leader = self.cluster.wait_for_leader(60)
        if leader is None:
            raise RuntimeError(f"no leader within 60 s; node logs in {self.cluster.root}")
        self.say(f"cluster up, leader {leader}")

    def _start_workloads(self) -> None:
        cfg = self.config
        endpoints = [self.network.client_addr(n) for n in self.cluster.ids]
        init = self.network.client_thread_init()
        makers: dict[str, Callable[[], Workload]] = {
            "register": lambda: RegisterWorkload(
                endpoints, cfg.workers, seed=cfg.seed, keys=self._register_keys()
            ),
            "set": lambda: SetWorkload(endpoints, cfg.workers, seed=cfg.seed + 1),
            "counter": lambda: CounterWorkload(endpoints, cfg.workers, seed=cfg.seed + 2),
            "queue": lambda: QueueWorkload(endpoints, cfg.workers, seed=cfg.seed + 3),
            "stream": lambda: StreamWorkload(endpoints, cfg.workers, seed=cfg.seed + 4),
            "bank": lambda: BankWorkload(endpoints, cfg.workers, seed=cfg.seed + 5),
            "append": lambda: AppendWorkload(
                endpoints, cfg.workers, seed=cfg.seed + 6, region_of=self._founding_region
            ),
            "tso": lambda: TsoWorkload(
                [self.cluster.admin_addr(n) for n in self.cluster.ids],
                cfg.workers,
                seed=cfg.seed + 7,
                token=self.cluster.admin_token,
            ),
        }
        for name in cfg.workloads:
            workload = makers[name]()
            workload.thread_init = init
            workload.start()
            self.workloads.append(workload)

    def _founding_region(self, key: str) -> int:
        """The founding region holding `key` (the plain reads of list-append aim outside
        a transaction's primary region with it)."""
        return founding_region(key, self.config.founding_regions)

    def _register_keys(self) -> tuple[str, ...]:
        if self.config.founding_regions > 1:
            return REGION_RUN_KEYS
        return tuple(RegisterWorkload.keys)

    def _wait_until(self, at: float) -> None:
        while self.now() < at:
            time.sleep(min(0.2, at - self.now()))
            self._reap_crashes()

    # -- faults ----------------------------------------------------------------------------

    def _inject(self, planned: Planned) -> None:
        if planned.kind in REGION_FAULTS:
            handler = self.region_faults.handler(planned.kind)
        elif planned.kind in PLACEMENT_FAULTS:
            handler = self.placement_faults.handler(planned.kind)
        else:
            handler = getattr(self, "_fault_" + planned.kind.value.replace("-", "_"))
        record = FaultRecord(planned.kind, "", time.monotonic_ns())
        self.records.append(record)
        try:
            handler(planned, record)
        except (redis.RedisError, OSError, TimeoutError, AdminClientError) as exc:
            record.notes.append(f"runner error while injecting: {exc!r}")
        record.end = record.end or time.monotonic_ns()
        self.say(f"{planned.kind.value}: {record.describe()}")

    def _victim(self, prefer_leader: bool | None = None) -> int:
        """A node to hit: the leader half of the time (or as told), else another node."""
        leader = self.cluster.leader()
        alive = [n for n in self.cluster.ids if self.cluster.running(n)]
        if prefer_leader is None:
            prefer_leader = self.rng.random() < 0.5
        if leader is not None and prefer_leader:
            return leader
        others = [n for n in alive if n != leader] or self.cluster.ids
        return self.rng.choice(others)

    def _role(self, node: int) -> str:
        return "leader" if self.cluster.leader() == node else "follower"

    def _fault_kill(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        r.target = f"node {node} ({self._role(node)})"
        self.cluster.kill(node)
        time.sleep(p.duration)
        self.cluster.start(node)
        r.detail = f"kill -9, restarted after {p.duration:.1f}s"

    def _fault_pause(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        r.target = f"node {node} ({self._role(node)})"
        self.cluster.pause(node)
        time.sleep(p.duration)
        self.cluster.resume(node)
        r.detail = f"SIGSTOP for {p.duration:.1f}s, then SIGCONT"

    def _fault_partition(self, p: Planned, r: FaultRecord) -> None:
        blocked, r.target = self._partition_pairs(p.shape)
        self.network.partition(frozenset(blocked))
        time.sleep(p.duration)
        self.network.heal()
        r.detail = f"{p.shape} for {p.duration:.1f}s"

    def _partition_pairs(self, shape: str) -> tuple[set[tuple[int, int]], str]:
        ids = list(self.cluster.ids)
        cut: set[tuple[int, int]] = set()

        def split(side: list[int]) -> None:
            cut.update((a, b) for a in side for b in ids if b not in side)
            cut.update((b, a) for a in side for b in ids if b not in side)

        if shape == "one-way":
            node = self._victim()
            cut.update((node, b) for b in ids if b != node)
            return cut, f"node {node} unheard (its packets dropped, it still receives)"
        if shape == "isolate-leader":
            node = self._victim(prefer_leader=True)
            split([node])
            return cut, f"node {node} isolated"
        if shape == "majority-ring":
            return self._ring(ids, cut)
        self.rng.shuffle(ids)
        minority = sorted(ids[: len(ids) // 2])
        split(minority)
        return cut, f"{minority} | {sorted(ids[len(ids) // 2 :])}"

    def _ring(self, ids: list[int], cut: set[tuple[int, int]]) -> tuple[set[tuple[int, int]], str]:
        """Each node keeps a majority, but no two see the same one."""
        n = len(ids)
        reach = max(1, (n // 2 + 1) // 2)
        if 2 * reach + 1 >= n:  # 3 nodes: a ring is complete, so cut one link instead
            a, b = sorted(self.rng.sample(ids, 2))
            cut.update({(a, b), (b, a)})
            return cut, f"link {a}-{b} cut (each node still sees a majority)"
        for i, a in enumerate(ids):
            near = {ids[(i + d) % n] for d in range(-reach, reach + 1)}
            cut.update((a, b) for b in ids if b not in near)
        return cut, f"majority ring: each node sees its {reach} neighbours each side"

    def _fault_delay(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        delay = self.rng.uniform(0.02, 0.2)
        r.target = f"node {node}"
        for other in self.cluster.ids:
            if other != node:
                for link in (
                    self.network.mesh.link(node, other),
                    self.network.mesh.link(other, node),
                ):
                    link.delay, link.jitter = delay, delay / 2
        time.sleep(p.duration)
        self.network.mesh.clear()
        r.detail = f"{delay * 1000:.0f} ms (+0-{delay * 500:.0f} ms jitter) on its links"

    def _fault_loss(self, p: Planned, r: FaultRecord) -> None:
        loss = self.rng.uniform(0.1, 0.4)
        r.target = "all links"
        for a in self.cluster.ids:
            for b in self.cluster.ids:
                if a != b:
                    self.network.mesh.link(a, b).loss = loss
        time.sleep(p.duration)
        self.network.mesh.clear()
        r.detail = f"{loss:.0%} of chunks held for a retransmission timeout"

    def _fault_stall(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        r.target = f"node {node} ({self._role(node)})"
        links = [
            self.network.mesh.link(a, b)
            for a in self.cluster.ids
            for b in self.cluster.ids
            if a != b and node in (a, b)
        ]
        for link in links:
            link.blocked = True
        time.sleep(p.duration)
        for other in self.cluster.ids:
            if other != node:
                self.network.mesh.cut(node, other)
        for link in links:
            link.blocked = False
        r.detail = f"links frozen {p.duration:.1f}s, then connections reset"

    def _fault_clock(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        rate = self.rng.uniform(*SKEW_RANGE) * self.rng.choice((-1, 1))
        r.target = f"node {node} ({self._role(node)})"
        self.cluster.command(node, "CAIRN.CLOCKSKEW", f"{rate:.4f}")
        time.sleep(p.duration)
        with contextlib.suppress(redis.RedisError):
            self.cluster.command(node, "CAIRN.CLOCKSKEW", "0")
        r.detail = f"clock {rate:+.1%} for {p.duration:.1f}s"

    def _fault_slow_fsync(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        ms = self.rng.randrange(20, 150)
        r.target = f"node {node} ({self._role(node)})"
        self.cluster.command(node, "CAIRN.FAILPOINT", "storage.lmdb.sync", f"sleep({ms})")
        time.sleep(p.duration)
        with contextlib.suppress(redis.RedisError):
            self.cluster.command(node, "CAIRN.FAILPOINT", "storage.lmdb.sync", "off")
        r.detail = f"every fsync +{ms} ms for {p.duration:.1f}s"

    def _fault_fsync_error(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim()
        err = self.rng.choice(("EIO", "ENOSPC"))
        r.target = f"node {node} ({self._role(node)})"
        self.cluster.command(node, "CAIRN.FAILPOINT", "storage.lmdb.sync", f"return({err})")
        deadline = time.monotonic() + 10
        while self.cluster.running(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        code = self.cluster.exit_code(node)
        if code is None:
            with contextlib.suppress(redis.RedisError):
                self.cluster.command(node, "CAIRN.FAILPOINT", "storage.lmdb.sync", "off")
            r.notes.append("still running 10 s later (it had nothing to sync?)")
        elif code != 1:
            r.problems.append(f"exited with status {code}, expected 1")
        r.detail = f"fsync -> {err}; node " + (
            "stopped (exit 1)" if code == 1 else f"status {code}"
        )
        r.end = time.monotonic_ns()
        self.cluster.start(node)

    def _fault_corrupt(self, p: Planned, r: FaultRecord) -> None:
        node = self._victim(prefer_leader=False)
        r.target = f"node {node}"
        self.cluster.kill(node)
        data = self.cluster.data_dir(node)
        spare = self.cluster.root / f"node{node}.backup"
        corruption.backup(data, spare)
        damage = (
            corruption.flip_log_bit(data, self.rng)
            if self.rng.random() < 0.7
            else corruption.truncate_data_file(data, self.rng)
        )
        log_mark = self.cluster.log_path(node).stat().st_size
        self.cluster.start(node)
        verdict = self._await_refusal(node, log_mark)
        r.detail = f"{damage}; {verdict}"
        corruption.restore(data, spare)
        r.end = time.monotonic_ns()
        self.cluster.start(node)

    def _await_refusal(self, node: int, log_mark: int) -> str:
        """Watch a node started on damaged data: it must exit and never lead."""
        deadline = time.monotonic() + 20
        record = self.records[-1]
        while self.cluster.running(node) and time.monotonic() < deadline:
            if self.cluster.leader() == node:
                record.problems.append("was elected leader with a damaged log")
            time.sleep(0.2)
        code = self.cluster.exit_code(node)
        if code is None:
            self.cluster.kill(node)
            record.problems.append("started and kept running on damaged data")
            return "NOT refused"
        text = self.cluster.log_path(node).read_bytes()[log_mark:].decode(errors="replace")
        errors = [line.split("msg=", 1)[-1] for line in text.splitlines() if "cannot start" in line]
        if code > 0 and errors:
            return f"refused to start: {errors[-1]}"
        record.notes.append(f"refused by crashing (status {code}) without a clear error")
        return f"refused to start by crashing (status {code}, no clear error)"

    def _fault_power_loss(self, p: Planned, r: FaultRecord) -> None:
        r.target = "every node"
        for node in self.cluster.ids:
            self.cluster.signal(node, signal.SIGKILL)
        for node in self.cluster.ids:
            self.cluster.kill(node)
        restored = [
            n for n in self.cluster.ids if restore_power_loss_image(self.cluster.data_dir(n))
        ]
        for node in self.cluster.ids:
            self.cluster.start(node)
        r.detail = "kill -9 of all nodes at once, then restart"
        if restored:
            r.detail += f"; nodes {restored} restarted from their power-loss image"
        self.cluster.wait_for_leader(20)

    def _reap_crashes(self) -> None:
        """A node that exited on its own (not killed by a fault) is a finding; restart it."""
        for node in self.cluster.ids:
            code = self.cluster.exit_code(node)
            if code is None or code == -signal.SIGKILL:
                continue
            tail = self.cluster.log_path(node).read_text(errors="replace").splitlines()[-3:]
            record = FaultRecord(FaultKind.KILL, f"node {node}", time.monotonic_ns())
            record.detail = "exited on its own"
            record.problems.append(f"exited unexpectedly with status {code}: {' | '.join(tail)}")
            record.end = record.start
            self.records.append(record)
            self.say(f"node {node} exited unexpectedly (status {code})")
            self.cluster.start(node)

    # -- the end ---------------------------------------------------------------------------

    def _finish(self) -> dict[str, object]:
        """Heal everything, let the clients see the healed cluster, stop them, read."""
        self.network.heal()
        for node in self.cluster.ids:
            self.cluster.resume(node)
            if not self.cluster.running(node):
                self.cluster.start(node)
        for node in self.cluster.ids:
            with contextlib.suppress(redis.RedisError, TimeoutError):
                self.cluster.command(node, "CAIRN.CLOCKSKEW", "0")
                self.cluster.command(node, "CAIRN.FAILPOINT", "storage.lmdb.sync", "off")
        leader = self.cluster.wait_for_leader(30)
        self.say(f"healed; leader {leader}")
        time.sleep(self.config.final_quiet)
        for workload in self.workloads:
            workload.stop()
        return {type(w).__name__: self._final_read(w) for w in self.workloads}

    def _final_read(self, workload: Workload) -> object:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            node = self.cluster.leader() or 1

            def read(w: Workload = workload, n: int = node) -> object:
                with w.client(self.network.client_addr(n)) as client:
                    return w.final_read(client)

            try:
                return self.cluster.admin(read)
            except (redis.RedisError, OSError, TimeoutError):
                time.sleep(0.5)
                self._reap_crashes()  # a node that exited at the very end: restart it
        return None

    def _result(self, plan: list[Planned], finals: dict[str, object], ended: int) -> ChaosResult:
        cfg = self.config
        checks, histories, ops, crossing = [], {}, {}, {}
        for workload in self.workloads:
            name = str(getattr(workload, "name", type(workload).__name__))
            final = finals.get(type(workload).__name__)
            checks.append(workload.check(final))
            path = cfg.out / f"history-{name}.jsonl"
            events = workload.history.snapshot()
            with path.open("w") as fp:
                write_jsonl(events, fp)
            histories[name] = path
            counts = {t.value: 0 for t in OpType if t is not OpType.INVOKE}
            for op in events:
                if op.type is not OpType.INVOKE:
                    counts[op.type.value] += 1
            ops[name] = counts
            if isinstance(workload, TxnWorkload):
                crossing[name] = count_cross_region(events, cfg.founding_regions)
        faults_json = [
            {
                "kind": r.kind.value,
                "target": r.target,
                "start_s": (r.start - self.t0) / 1e9,
                "end_s": (r.end - self.t0) / 1e9,
                "detail": r.detail,
                "outcome": r.outcome,
                "problems": r.problems,
                "notes": r.notes,
            }
            for r in self.records
        ]
        (cfg.out / "faults.json").write_text(json.dumps(faults_json, indent=2) + "\n")
        return ChaosResult(
            cfg, self.network_description, plan, self.records, checks, histories, ops,
            self.t0, ended, cross_region=crossing,
        )  # fmt: skip

    def cleanup(self) -> None:
        """Stop every process, proxy and namespace this run created (idempotent)."""
        if self._cleaned:
            return
        self._cleaned = True
        for workload in self.workloads:
            workload._stop.set()
        with contextlib.suppress(Exception):
            self.cluster.close()
        with contextlib.suppress(Exception):
            self.network.teardown()
        if not self.config.keep_data:
            for node in self.cluster.ids:
                shutil.rmtree(self.cluster.data_dir(node), ignore_errors=True)
                shutil.rmtree(self.cluster.root / f"node{node}.backup", ignore_errors=True)
        atexit.unregister(self.cleanup)


def _sigterm_as_interrupt() -> Any:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks clean up; the old handler."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return signal.getsignal(signal.SIGTERM)


def run_chaos(config: ChaosConfig, progress: Progress | None = None) -> ChaosResult:
    """Run one chaos run (see `ChaosRun`)."""
    return ChaosRun(config, progress).run()
