"""CPU microseconds per SET on each node of a 3-node cluster, at 1 and at 50 clients.

    PYTHONPATH=src python bench/set_cpu.py                 # 3 rounds of both loads
    PYTHONPATH=src python bench/set_cpu.py --rounds 5 --n1 2000 --n50 30000
    PYTHONPATH=src python bench/set_cpu.py --profile /tmp/prof   # py-spy leader + follower
    PYTHONPATH=src python bench/set_cpu.py --tests set,sadd,spop,zadd,zpopmin --n50 10000

Starts a `LocalCluster` of 3 nodes (what `cairn dev` starts, production timing), then for
each round runs `redis-benchmark -t set -d 100 -r 100000` against the leader with 1 client
and with 50 clients, and reads each node's CPU time (utime + stime from /proc/PID/stat)
around the run. With `--tests`, each round runs those redis-benchmark tests instead, in the
order given, 50 clients each, with `bench/datatypes.py`'s arguments (`-r 100000`, default
3-byte values), so SPOP pops the set SADD filled and the CPU per command compares with
SET's of the same round. The machine this was written on has 2 shared cores, so throughput moves
with whatever else runs; CPU time per operation is the figure to compare between versions.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import cpu_meter, redis_benchmark, start_cairn


def args_for(clients: int, n: int) -> list[str]:
    """redis-benchmark arguments of one SET load."""
    return ["-t", "set", "-n", str(n), "-c", str(clients), "-d", "100", "-r", "100000", "--csv"]


def test_args(test: str, n: int) -> list[str]:
    """redis-benchmark arguments of one data-type test, as `bench/datatypes.py` runs it."""
    return ["-t", test, "-n", str(n), "-c", "50", "-r", "100000", "--csv"]


def per_test(pids: dict[int, int], leader: int, port: int, a: argparse.Namespace) -> None:
    """`--tests`: each round runs every named test once, one line each."""
    for r in range(a.rounds):
        for test in a.tests.split(","):
            n = a.n50
            with cpu_meter(list(pids.values())) as used:
                fig = redis_benchmark(port, test_args(test, n))
            per = {i: 1e6 * used[pid] / n for i, pid in pids.items()}
            fol = " ".join(f"{per[i]:5.0f}" for i in sorted(pids) if i != leader)
            print(
                f"round {r} {test:8s}: {fig.rps:7,.0f}/s p99 {fig.p99_ms:7.2f} ms  CPU us/op "
                f"leader {per[leader]:5.0f} followers {fol}  all {sum(per.values()):5.0f}",
                flush=True,
            )


def spy(pid: int, out: Path, seconds: int) -> threading.Thread:
    """py-spy `pid` for `seconds` into `out` (raw folded stacks), in a thread."""

    def run() -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        argv = [exe, "record", "-f", "raw", "-r", "200", "--nonblocking", "-d", str(seconds)]
        subprocess.run([*argv, "-o", str(out), "--pid", str(pid)], capture_output=True, check=False)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def main() -> None:
    """Parse flags, start the cluster, measure, print one line per run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n1", type=int, default=1500)
    p.add_argument("--n50", type=int, default=20000)
    p.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    p.add_argument("--profile", type=Path, default=None)
    p.add_argument("--profile-seconds", type=int, default=12)
    p.add_argument("--profile-clients", type=int, default=50, help="clients of the profiled load")
    p.add_argument("--tests", default="", help="comma-separated redis-benchmark tests")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="set-cpu-") as tmp:
        cluster, leader = start_cairn(Path(tmp))
        try:
            pids = {i: cluster.procs[i].pid for i in cluster.procs}
            port = cluster.spec(leader).client_port
            redis_benchmark(port, args_for(50, 5000))  # warm-up
            if a.profile is not None:
                a.profile.mkdir(parents=True, exist_ok=True)
                follower = next(i for i in pids if i != leader)
                threads = [
                    spy(pids[leader], a.profile / "leader.txt", a.profile_seconds),
                    spy(pids[follower], a.profile / "follower.txt", a.profile_seconds),
                ]
                n = a.n50 if a.profile_clients > 1 else a.n1
                redis_benchmark(port, args_for(a.profile_clients, n))
                for t in threads:
                    t.join()
                return
            if a.tests:
                per_test(pids, leader, port, a)
                return
            with cpu_meter(list(pids.values())) as idle:
                time.sleep(a.idle)
            shares = " ".join(f"{100 * idle[pids[i]] / a.idle:.1f}" for i in sorted(pids))
            print(f"idle CPU % of a core per node (leader {leader}): {shares}", flush=True)
            for r in range(a.rounds):
                for clients, n in ((1, a.n1), (50, a.n50)):
                    with cpu_meter(list(pids.values())) as used:
                        fig = redis_benchmark(port, args_for(clients, n))
                    now = cluster.leader_seen_by(leader)
                    per = {i: 1e6 * used[pid] / n for i, pid in pids.items()}
                    fol = " ".join(f"{per[i]:6.0f}" for i in sorted(pids) if i != leader)
                    print(
                        f"round {r} clients {clients:2d}: {fig.rps:8,.0f}/s p50 {fig.p50_ms:6.2f} "
                        f"p99 {fig.p99_ms:6.2f} ms  CPU us/SET leader {per[leader]:6.0f} "
                        f"followers {fol}" + ("" if now == leader else "  (leader changed)"),
                        flush=True,
                    )
        finally:
            cluster.stop()


if __name__ == "__main__":
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found")
    main()
