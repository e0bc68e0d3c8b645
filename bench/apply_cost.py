"""CPU per applied command of redis-benchmark's data-type tests, on the state machine alone.

    PYTHONPATH=src python bench/apply_cost.py                    # every test, 2 rounds
    PYTHONPATH=src python bench/apply_cost.py -n 20000 --rounds 3
    PYTHONPATH=src python bench/apply_cost.py --profile spop     # cProfile of one test
    PYTHONPATH=src python bench/apply_cost.py --only set,spop --profile spop --top 30

A region's `StoreMachine` over an `LmdbKeyspace` in a temporary LMDB environment (the
production storage path), each write applied as a Raft entry in batches of `--batch`
entries per `apply_many` (a Ready under 50 clients carries a few tens), with the command
lines `redis-benchmark -t T -r 100000` sends: `SET key:__rand_int__ xxx`, `LPUSH mylist
xxx`, `RPOP mylist`, `SADD myset element:__rand_int__`, `SPOP myset`, `ZADD myzset
__rand_int__ element:__rand_int__`, `ZPOPMIN myzset`, in the order `bench/datatypes.py`
runs them (so SPOP pops the set SADD filled, ZPOPMIN the sorted set ZADD filled). The
figure is CPU time (`time.process_time`) per applied command, the part of a write that
every replica pays; the Raft round trip, the fsync and the reply cost the same for every
command. Run on a quiet machine, or compare ratios to SET within one run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "src"))  # PYTHONPATH, when set, comes first (A/B runs)

from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions  # noqa: E402
from cairn.storage.lmdb_keyspace import LmdbKeyspace  # noqa: E402
from cairn.store import StoreMachine  # noqa: E402
from cairn.store.machine import encode_command  # noqa: E402
from cairn.store.scope import Scope  # noqa: E402

RANGE = 100_000
VALUE = b"x" * 3

Make = Callable[[random.Random], tuple[str, list[bytes]]]


def _rand(rng: random.Random) -> bytes:
    return b"%012d" % rng.randrange(RANGE)


TESTS: dict[str, Make] = {
    "set": lambda r: ("set", [b"key:" + _rand(r), VALUE]),
    "lpush": lambda r: ("lpush", [b"mylist", VALUE]),
    "rpush": lambda r: ("rpush", [b"mylist", VALUE]),
    "lpop": lambda r: ("lpop", [b"mylist"]),
    "rpop": lambda r: ("rpop", [b"mylist"]),
    "sadd": lambda r: ("sadd", [b"myset", b"element:" + _rand(r)]),
    "spop": lambda r: ("spop", [b"myset"]),
    "zadd": lambda r: ("zadd", [b"myzset", _rand(r), b"element:" + _rand(r)]),
    "zpopmin": lambda r: ("zpopmin", [b"myzset"]),
}


class Applier:
    """Applies commands to one region machine in `batch`-entry `apply_many` calls."""

    def __init__(self, machine: StoreMachine, batch: int) -> None:
        self.machine = machine
        self.batch = batch
        self.index = 0
        self.now = 1_700_000_000_000

    def run(self, entries: list[bytes]) -> float:
        """Apply `entries`; CPU seconds spent."""
        began = time.process_time()
        for at in range(0, len(entries), self.batch):
            chunk = entries[at : at + self.batch]
            numbered = [(self.index + 1 + i, data) for i, data in enumerate(chunk)]
            self.index += len(chunk)
            self.machine.apply_many(numbered, in_range=True)
        return time.process_time() - began

    def entries(self, make: Make, n: int, rng: random.Random) -> list[bytes]:
        """`n` encoded entries of one test (encoded outside the timed part)."""
        out = []
        for _ in range(n):
            self.now += 1
            name, args = make(rng)
            out.append(encode_command(name, args, self.now))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="commands per test")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="entries per apply_many")
    parser.add_argument("--only", default="", help="comma-separated tests (default: all)")
    parser.add_argument("--profile", metavar="TEST", help="cProfile this test (last round)")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    names = [t for t in args.only.split(",") if t] or list(TESTS)
    unknown = set(names) - set(TESTS)
    if unknown:
        parser.error(f"unknown tests: {sorted(unknown)}")
    results: dict[str, list[float]] = {name: [] for name in names}
    profile = cProfile.Profile() if args.profile else None
    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="apply-cost-") as tmp:
            env = LmdbEnv.open(Path(tmp), 1, "apply-cost", LmdbOptions())
            try:
                machine = StoreMachine(LmdbKeyspace(env), scope=Scope.region(1))
                applier = Applier(machine, args.batch)
                rng = random.Random(round_no)
                for name in names:
                    entries = applier.entries(TESTS[name], args.n, rng)
                    last = round_no == args.rounds - 1
                    if profile is not None and last and name == args.profile:
                        profile.enable()
                    spent = applier.run(entries)
                    if profile is not None and last and name == args.profile:
                        profile.disable()
                    results[name].append(spent / args.n * 1e6)
            finally:
                env.close()
    base = results.get("set")
    print(f"CPU us per applied command, -n {args.n}, batches of {args.batch}, per round:")
    for name in names:
        figures = " ".join(f"{us:6.1f}" for us in results[name])
        ratio = ""
        if base is not None and name != "set":
            ratio = "  x SET: " + " ".join(
                f"{us / b:.2f}" for us, b in zip(results[name], base, strict=True)
            )
        print(f"  {name:8s} {figures}{ratio}")
    if profile is not None:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
