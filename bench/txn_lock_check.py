"""The cost of the cross-region transactions' lock check on a SET's apply and a GET.

Run: `PYTHONPATH=src python bench/txn_lock_check.py [--n N] [--rounds R]`.

A region machine on a node's LMDB applies N ``SET key<i> <100 bytes>`` entries, 100 per
`apply_many` (a Ready's worth, one LMDB write transaction), then serves N GETs; the best
round of each variant is printed in CPU microseconds per command (process time: the
figure least moved by other load on a shared machine). Every client command looks
up the ``L`` record of each of its keys first (`cairn.store.txn_locks.lock_error`: one
LMDB get per key) while the region holds any lock; a region holding none skips it. The
rounds cycle through three variants, so all see the same machine load (on a shared
machine only such an interleaved best-of comparison means anything):

- "no check": the check replaced by a no-op (the code before it);
- "no lock held": the real code, no lock in the region (the usual case);
- "a lock held": the real code, another key of the region locked (every command checks).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from cairn.meta.region import Region
from cairn.raft.types import ConfState
from cairn.storage import LmdbOptions
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.storage.region_meta import RegionLocalState
from cairn.store import Scope, StoreMachine, encode_command
from cairn.store import machine as machine_module
from cairn.store.txn_locks import LOCK_COMMAND, ROLLBACK_COMMAND

T0 = 1_700_000_000_000
BATCH = 100


def run(machine: StoreMachine, n: int, first_index: int) -> tuple[float, float]:
    """(us per SET apply, us per GET) for `n` keys, entries from `first_index` on."""
    value = b"v" * 100
    entries = [
        (first_index + i, encode_command("set", [b"key%d" % i, value], T0)) for i in range(n)
    ]
    start = time.process_time()
    for i in range(0, n, BATCH):
        machine.apply_many(entries[i : i + BATCH])
    set_us = (time.process_time() - start) / n * 1e6
    start = time.process_time()
    for i in range(n):
        machine.execute_read("get", [b"key%d" % i], T0, in_range=True)
    get_us = (time.process_time() - start) / n * 1e6
    return set_us, get_us


def main() -> None:
    """Parse flags, measure, print the best round of each variant."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=30)
    a = p.parse_args()
    real = machine_module.lock_error
    best = {name: [float("inf")] * 2 for name in ("no check", "no lock held", "a lock held")}
    with tempfile.TemporaryDirectory(prefix="txn-lock-check-") as tmp:
        node = NodeStore.open(Path(tmp), 1, "bench", LmdbOptions(map_size=1 << 30))
        node.create_region(RegionLocalState(1, region=Region(1)), conf_state=ConfState((1,)))
        machine = StoreMachine(node.keyspace, scope=Scope.region(1))
        index = RAFT_INIT_INDEX
        locked = b""
        for _, variant in zip(range(a.rounds), itertools.cycle(best), strict=False):
            held = variant != "no lock held"
            index += 1
            ts = b"%d" % index  # a fresh transaction each time
            if held and not locked:
                args = [ts, b"other", b"60000", b"1000", b"0", b"other"]
                machine.apply(index, encode_command(LOCK_COMMAND, args, T0))
                locked = ts
            elif not held and locked:
                args = [locked, b"1", b"other"]
                machine.apply(index, encode_command(ROLLBACK_COMMAND, args, T0))
                locked = b""
            patched = real if variant != "no check" else _no_check
            machine_module.lock_error = patched  # type: ignore[attr-defined]
            figures = run(machine, a.n, index + 1)
            index += a.n
            best[variant] = [min(x, y) for x, y in zip(best[variant], figures, strict=True)]
        machine_module.lock_error = real  # type: ignore[attr-defined]
        node.close()
    for variant, (set_us, get_us) in best.items():
        line = f"SET apply {set_us:.1f} us, GET {get_us:.1f} us"
        print(f"{variant:>13}: {line} (best of {a.rounds // len(best)})")


def _no_check(reader: object, keys: object, now_ms: int) -> None:
    return None


if __name__ == "__main__":
    main()
