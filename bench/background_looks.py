"""CPU per call of a region leader's background looks on a 100,000-key LMDB region whose
keys have no TTL, as `runtime/node.py`'s active expiry and `runtime/reclaimer.py` make
them (docs/benchmarks.md, "Background looks that cost nothing when there is nothing to
do"). Runs in-process, no cluster:

    PYTHONPATH=src python bench/background_looks.py
"""

import tempfile
import time

from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.store import StoreMachine, encode_command
from cairn.store.scope import Scope
from cairn.store.txn_locks import stale_statuses

T0 = 1_700_000_000_000
with tempfile.TemporaryDirectory() as tmp:
    env = LmdbEnv.open(tmp, 1, "bench", LmdbOptions(map_size=1 << 30))
    m = StoreMachine(LmdbKeyspace(env), scope=Scope.region(1))
    idx = 0
    for chunk in range(100):
        idx += 1
        args = [x for i in range(1000) for x in (b"key:%06d" % (chunk * 1000 + i), b"v" * 100)]
        m.apply(idx, encode_command("mset", args, T0))
    # steady state: laps as the leader would make them, then a plain SET
    for _ in range(200):
        m.expired_keys(T0, 64)
        m.reclaimable_streams(T0, 64)
    idx += 1
    m.apply(idx, encode_command("set", [b"key:000001", b"w"], T0))
    looks = {
        "expired_keys (1/s)": lambda: m.expired_keys(T0, 64),
        "has_expired_requests (1/s)": lambda: m.has_expired_requests(T0),
        "reclaimable_streams (2/s)": lambda: m.reclaimable_streams(T0, 64),
        "has_garbage (<=2/s)": lambda: m.has_garbage(),
        # the reclaimer's status look; a tree without `may_hold_statuses` (main before
        # issue 10's change) always reads
        "stale_statuses (1/s)": (
            (lambda: m.may_hold_statuses and stale_statuses(m.keyspace, m.scope, T0, 600000, b""))
            if hasattr(m, "may_hold_statuses")
            else (lambda: stale_statuses(m.keyspace, m.scope, T0, 600000, b""))
        ),
    }
    for name, fn in looks.items():
        n = 200
        t = time.process_time()
        for _ in range(n):
            fn()
        print(f"{name:30s} {1e6 * (time.process_time() - t) / n:9.1f} us per look")
    env.close()
