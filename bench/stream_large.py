"""Stream commands on a stream of ten million entries against the same on a 100-entry stream
(issue 13: they stay O(log n)), and trimming millions of entries without a stall.

    python bench/stream_large.py                      # 10,000,000 entries, ~10 minutes
    python bench/stream_large.py --entries 1000000    # a quicker look

Everything runs in this process on the production storage path: a `StoreMachine` over an
`LmdbKeyspace` in a temporary LMDB environment, commands applied as Raft entries would be
(`MachineClient`: `apply` for writes, `execute_read` for reads). No Raft, no network: what
is measured is the state machine's work per command, which is what grows with the stream.

1. builds stream `big` of N entries directly through the stream's records (`put_entry`,
   200,000 entries a write transaction: minutes instead of hours of XADD), and stream
   `small` of 100 entries by XADD, in the same environment;
2. times each command per call (the median of `--reps` calls, big and small interleaved so
   both see the same machine load): XADD, XRANGE COUNT 100 from the start, the middle and
   the end, XREVRANGE COUNT 100, XLEN, XINFO STREAM, XGROUP-less XREAD COUNT 10, XREADGROUP
   COUNT 10 with `>`, XACK of those 10, XPENDING (summary), XINFO GROUPS; prints the ratio
   big/small (target: within about 2x);
3. trims: XTRIM MAXLEN of half the big stream, then XTRIM MAXLEN 0 (one apply each, timed,
   with the records deleted in that apply), then counts the applies that reclaim the
   trimmed records (`cairn.xreclaim`, as the leader proposes it) and the longest one.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "store"))

from store_harness import MachineClient  # noqa: E402

from cairn.resp.reply import Array, Bulk, NestedMap, Reply  # noqa: E402
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions  # noqa: E402
from cairn.storage.lmdb_keyspace import LmdbKeyspace  # noqa: E402
from cairn.store import StoreMachine  # noqa: E402
from cairn.store.commands.stream_ids import StreamId  # noqa: E402
from cairn.store.commands.stream_reclaim import RECLAIM_COMMAND  # noqa: E402
from cairn.store.commands.stream_store import StreamState, put_entry, save  # noqa: E402
from cairn.store.db import Db  # noqa: E402
from cairn.store.machine import encode_command  # noqa: E402

START_MS = 1_700_000_000_000
CHUNK = 200_000
VALUE = b"v" * 16


class Clock:
    """Milliseconds for the commands' now_ms: past every id the build wrote."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


def build(client: MachineClient, key: bytes, entries: int) -> None:
    """Write `entries` entries (ids START_MS + i/10 - i%10) in transactions of CHUNK."""
    keyspace = client.machine.keyspace
    state = StreamState()
    stream = None
    done = 0
    began = time.perf_counter()
    while done < entries:
        with keyspace.transaction():
            batch = keyspace.begin()
            db = Db(keyspace, batch, START_MS, client.machine.scope)
            for i in range(done, min(entries, done + CHUNK)):
                entry_id = StreamId(START_MS + i // 10, i % 10)
                put_entry(db, key, state, entry_id, (b"f", VALUE))
                state = StreamState(
                    length=state.length + 1,
                    last_id=entry_id,
                    first_id=state.first_id if state.length else entry_id,
                    entries_added=state.entries_added + 1,
                    next_ord=state.next_ord + 1,
                )
            stream = save(db, key, stream, state)
            batch.commit()
        done = state.length
        rate = done / (time.perf_counter() - began)
        print(f"\r  built {done:,} entries ({rate:,.0f}/s)", end="", flush=True)
    print()


def entry_id(i: int) -> bytes:
    return b"%d-%d" % (START_MS + i // 10, i % 10)


def per_call(fn: Callable[[], object], reps: int) -> float:
    """The median time of one call, in microseconds."""
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e6


def ids_of(reply: Reply) -> list[bytes]:
    """The entry ids in an XREADGROUP reply (one stream)."""
    assert isinstance(reply, NestedMap), reply
    rows = reply.pairs[0][1]
    assert isinstance(rows, Array)
    return [row.items[0].value for row in rows.items]  # type: ignore[attr-defined]


def measure(
    client: MachineClient, reps: int, sizes: dict[bytes, int]
) -> dict[str, dict[bytes, float]]:
    """Each command's median µs per call on each stream."""
    call = client.call
    for key in sizes:
        call("XGROUP", "CREATE", key, "g", "0")
    acked: dict[bytes, list[bytes]] = {key: [] for key in sizes}

    delivered = {key: 0 for key in sizes}

    def readgroup(key: bytes) -> None:
        reply = call("XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", key, ">")
        acked[key] = ids_of(reply)
        delivered[key] += 10

    def rewind(key: bytes) -> None:
        """Untimed: start the group over from the middle when it nears the end."""
        if delivered[key] + 20 > sizes[key] // 2 or not delivered[key]:
            call("XGROUP", "SETID", key, "g", middle(key))
            delivered[key] = 0

    def ack(key: bytes) -> None:
        call("XACK", key, "g", *acked[key])

    def middle(key: bytes) -> bytes:
        return entry_id(sizes[key] // 2)

    def range_middle(key: bytes) -> bytes:
        """Where `XRANGE middle` starts: the middle, but 100 entries from the end at most
        (the small stream's middle has only 50 entries after it)."""
        return entry_id(min(sizes[key] // 2, sizes[key] - 100))

    def near_end(key: bytes) -> bytes:
        return entry_id(sizes[key] - 100)

    commands: dict[str, Callable[[bytes], object]] = {
        "XRANGE - + COUNT 100": lambda k: call("XRANGE", k, "-", "+", "COUNT", "100"),
        "XRANGE middle + COUNT 100": lambda k: call(
            "XRANGE", k, range_middle(k), "+", "COUNT", "100"
        ),
        "XRANGE end-100 + COUNT 100": lambda k: call("XRANGE", k, near_end(k), "+", "COUNT", "100"),
        "XREVRANGE + - COUNT 100": lambda k: call("XREVRANGE", k, "+", "-", "COUNT", "100"),
        "XLEN": lambda k: call("XLEN", k),
        "XINFO STREAM": lambda k: call("XINFO", "STREAM", k),
        "XREAD COUNT 10 (middle)": lambda k: call("XREAD", "COUNT", "10", "STREAMS", k, middle(k)),
        "XACK (10 ids)": ack,
        "XPENDING summary": lambda k: call("XPENDING", k, "g"),
        "XINFO GROUPS": lambda k: call("XINFO", "GROUPS", k),
        "XADD * (append)": lambda k: call("XADD", k, "*", "f", VALUE),
    }
    results: dict[str, dict[bytes, float]] = {"XREADGROUP COUNT 10 >": {k: 0.0 for k in sizes}}
    for name, fn in commands.items():
        results[name] = {key: 0.0 for key in sizes}
        rounds = 5
        for _ in range(rounds):  # interleaved: both streams see the same load
            for key in sizes:
                if name == "XACK (10 ids)":
                    results[name][key] += _paired(readgroup, ack, rewind, key, reps, 1) / rounds
                    results["XREADGROUP COUNT 10 >"][key] += (
                        _paired(readgroup, ack, rewind, key, reps, 0) / rounds
                    )
                else:
                    results[name][key] += per_call(lambda k=key, f=fn: f(k), reps) / rounds
    return results


def _paired(
    readgroup: Callable[[bytes], None],
    ack: Callable[[bytes], None],
    rewind: Callable[[bytes], None],
    key: bytes,
    reps: int,
    timed: int,
) -> float:
    """XREADGROUP COUNT 10 then XACK of its 10 ids, `reps` times; the median µs of the
    one `timed` says (0: XREADGROUP, 1: XACK)."""
    times = []
    for _ in range(reps):
        rewind(key)
        took = []
        for step in (readgroup, ack):
            began = time.perf_counter()
            step(key)
            took.append(time.perf_counter() - began)
        times.append(took[timed])
    return statistics.median(times) * 1e6


def trim(client: MachineClient, key: bytes, length: int) -> list[str]:
    """XTRIM to half, then to 0; then the reclaim applies. Lines for the report."""
    lines = []
    for maxlen in (length // 2, 0):
        began = time.perf_counter()
        reply = client.call("XTRIM", key, "MAXLEN", str(maxlen))
        took = (time.perf_counter() - began) * 1e3
        lines.append(f"XTRIM {key.decode()} MAXLEN {maxlen}: {reply!r}, one apply of {took:.1f} ms")
        after = client.call("XLEN", key)
        lines.append(f"  XLEN right after: {after!r}")
    applies, longest, began = 0, 0.0, time.perf_counter()
    while True:
        client.index += 1
        command = encode_command(RECLAIM_COMMAND, [key], client.clock())
        one = time.perf_counter()
        reply = client.machine.apply(client.index, command)
        longest = max(longest, time.perf_counter() - one)
        applies += 1
        if reply == Bulk(b"0") or getattr(reply, "value", 1) == 0:
            break
    total = time.perf_counter() - began
    lines.append(
        f"reclaim: {applies:,} applies of {RECLAIM_COMMAND} in {total:.1f} s, "
        f"the longest {longest * 1e3:.1f} ms"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=40, help="calls per timing round")
    parser.add_argument("--dir", default=None, help="where the LMDB environment goes")
    parser.add_argument("--no-trim", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="stream-large-") as where:
        env = LmdbEnv.open(where, 1, "bench", LmdbOptions(map_size=64 << 30))
        try:
            machine = StoreMachine(LmdbKeyspace(env))
            client = MachineClient(clock=Clock(START_MS + args.entries), machine=machine)
            print(f"building big ({args.entries:,} entries) and small (100) in {where}")
            began = time.perf_counter()
            build(client, b"big", args.entries)
            build(client, b"small", 100)
            print(f"  built in {time.perf_counter() - began:.0f} s")
            sizes = {b"big": args.entries, b"small": 100}
            results = measure(client, args.reps, sizes)
            print(
                f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
                f"µs per call (median), big = {args.entries:,} entries, small = 100"
            )
            print(f"{'command':30} {'big':>9} {'small':>9} {'ratio':>6}")
            for name, by_key in results.items():
                big, small = by_key[b"big"], by_key[b"small"]
                print(f"{name:30} {big:9.1f} {small:9.1f} {big / small:6.2f}")
            if not args.no_trim:
                print()
                for line in trim(client, b"big", args.entries):
                    print(line)
        finally:
            env.close()


if __name__ == "__main__":
    main()
