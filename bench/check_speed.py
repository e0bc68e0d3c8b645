"""Measure the linearizability checker's speed on generated histories.

Generates a linearizable register history (several keys, concurrent processes, some INFO
and FAIL operations), checks it, then corrupts one read to a value never written and checks
that, stopping at the violation and then checking every key. Prints wall and CPU time,
operations checked per CPU second, and the configurations the search explored. Reported
figures are CPU time: wall time depends on what else the machine runs.

    python bench/check_speed.py                  # 100k operations, 10 keys, 10 processes
    python bench/check_speed.py --ops 20000 --keys 1 --processes 5
"""

from __future__ import annotations

import argparse
import io
import time
from random import Random

from cairn.check.history import Op, read_jsonl, write_jsonl
from cairn.check.linearizability import Verdict, check_history
from cairn.check.synth import Workload, corrupt_read, random_history


def _timed_check(
    history: list[Op], max_states: int, stop_at_violation: bool = True
) -> tuple[Verdict, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    verdict = check_history(history, max_states, stop_at_violation)
    return verdict, time.perf_counter() - wall, time.process_time() - cpu


def _report(label: str, verdict: Verdict, wall: float, cpu: float) -> None:
    states = sum(k.states for k in verdict.keys)
    ops = verdict.ops_checked
    print(
        f"{label:<20} {verdict.outcome.value:<13} {ops:>7} ops on {len(verdict.keys):>3} keys"
        f"  wall {wall:6.2f} s  cpu {cpu:6.2f} s  {ops / cpu:>8,.0f} ops/cpu-s"
        f"  {states:>8} states"
    )
    if verdict.explanation:
        print(f"{'':<20} {verdict.explanation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--info-rate", type=float, default=0.02)
    parser.add_argument("--fail-rate", type=float, default=0.01)
    parser.add_argument("--max-states", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    workload = Workload(
        ops=args.ops,
        keys=args.keys,
        processes=args.processes,
        info_rate=args.info_rate,
        fail_rate=args.fail_rate,
    )
    start = time.perf_counter()
    history = random_history(Random(args.seed), workload)
    print(
        f"generated {len(history)} events ({args.ops} operations) in "
        f"{time.perf_counter() - start:.2f} s: {workload}"
    )

    buf = io.StringIO()
    start = time.perf_counter()
    write_jsonl(history, buf)
    buf.seek(0)
    assert read_jsonl(buf) == history
    print(
        f"JSON-lines round trip: {time.perf_counter() - start:.2f} s, "
        f"{len(buf.getvalue()) / 1e6:.1f} MB"
    )

    _report("linearizable", *_timed_check(history, args.max_states))
    corrupted = corrupt_read(history, Random(args.seed + 1))
    _report("corrupted read", *_timed_check(corrupted, args.max_states))
    _report("corrupted, all keys", *_timed_check(corrupted, args.max_states, False))


if __name__ == "__main__":
    main()
