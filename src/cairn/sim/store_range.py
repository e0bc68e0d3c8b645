"""`SimStoreMachine`: the real Redis state machine (`cairn.store`) as a region's machine in
the simulator.

Theory of operation. Every region peer of a simulated node holds one `StoreMachine` over an
in-memory keyspace of its own (whole-keyspace scope: the peer's keyspace holds exactly its
region's keys). It applies the same entries `cairn server` replicates (`encode_command`,
MULTI/EXEC's `cairn.exec`, EVAL), with the same command table. The machine is not durable
(`MemoryKeyspace.durable` is False), so a crashed node rebuilds it from its last Raft
snapshot and the log, and a crash loses exactly what the node's simulated disk loses.

Splitting and merging are record moves, the simulator's counterpart of the LMDB path's
`cairn.store.carve` (which needs one keyspace shared by every region of a node):

* `split_off` moves every ``M``, ``F`` and ``G`` record whose range key the new region
  owns into an image of a machine holding only them (applied index given, the time and the
  deletion stamp of this one), and takes their count off this machine's key count;
* `absorb` adds a merged neighbour's records and key count (time: the later of the two).

Transactions' lock (``L``) and status (``S``) records move with their key's range too.

Limits: IDEMPOTENT request records stay with the left half of a split (no simulated
workload sends IDEMPOTENT), and WATCH stamps restart with the new region's log (no
simulated workload WATCHes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgpack

from cairn.resp.reply import Bulk, Reply
from cairn.store.keyspace import MemoryKeyspace, write_batch
from cairn.store.layout import (
    APPLIED_KEY,
    DELETED_KEY,
    FIELD_TAG,
    GARBAGE_TAG,
    KEY_COUNT_KEY,
    LOCK_TAG,
    META_TAG,
    NOW_KEY,
    STATUS_TAG,
    decode_u64,
    encode_u64,
    status_range_key,
)
from cairn.store.machine import StoreMachine, command_keys, decode_command
from cairn.store.ranges import field_range_key
from cairn.store.scope import range_key
from cairn.store.transaction import TXN_COMMAND, decode_transaction

EPOCH_MS = 1_700_000_000_000
"""Virtual time zero as a Unix time in ms, so entries carry plausible timestamps."""
_SNAPSHOT_VERSION = 1
"""`StoreMachine`'s whole-keyspace image version (`StoreMachine.snapshot`)."""


def entry_keys(data: bytes) -> Sequence[bytes]:
    """The Redis keys of a command entry, a MULTI/EXEC's included (none for a malformed
    or unknown one: the store answers it with an error)."""
    try:
        name, args, _ = decode_command(data)
        if name == TXN_COMMAND and len(args) == 1:
            return decode_transaction(args[0]).keys()
    except ValueError:
        return ()
    return tuple(command_keys(name, args))  # every family: cross-region txn, effects too


def record_range_key(key: bytes) -> bytes | None:
    """The range key a data record (``M``, ``F``, ``G``) or a transaction's lock (``L``)
    or status (``S``) record belongs to; None for the machine's own (``X``) records."""
    if key.startswith(META_TAG) or key.startswith(LOCK_TAG):
        return key[1:]
    if key.startswith(STATUS_TAG):
        return status_range_key(key)
    if key.startswith(FIELD_TAG) or key.startswith(GARBAGE_TAG):
        return field_range_key(key)[0]
    return None


class SimStoreMachine:
    """A region peer's `StoreMachine` on its own `MemoryKeyspace`, as a `RangeMachine`."""

    def __init__(self, reads_ignore_locks: bool = False) -> None:
        """`reads_ignore_locks`: the planted bug of that name (`StoreMachine`'s)."""
        self.store = StoreMachine(MemoryKeyspace())
        self.store.reads_ignore_locks = reads_ignore_locks

    @property
    def applied_index(self) -> int:
        """See `StateMachine.applied_index`."""
        return self.store.applied_index

    def apply(self, index: int, data: bytes) -> Reply:
        """See `StoreMachine.apply`."""
        return self.store.apply(index, data)

    def snapshot(self) -> bytes:
        """See `StoreMachine.snapshot`."""
        return self.store.snapshot()

    def restore(self, data: bytes) -> None:
        """See `StoreMachine.restore`."""
        self.store.restore(data)

    def keys_of(self, data: bytes) -> Sequence[bytes]:
        """See `entry_keys`: this machine owns the whole of its keyspace, so the region's
        check of these keys is the only one (a real node's region-scoped store checks a
        transaction's keys again itself)."""
        return entry_keys(data)

    # -- split and merge -----------------------------------------------------------------

    def split_off(self, moves: Callable[[bytes], bool], applied: int) -> bytes:
        """Remove the records whose range key `moves`; the image of a machine holding only
        them at `applied` (module docstring)."""
        keyspace = self.store.keyspace
        moved = []
        for key, value in keyspace.scan(b""):
            rkey = record_range_key(key)
            if rkey is not None and moves(rkey):
                moved.append((key, value))
        keys = sum(1 for key, _ in moved if key.startswith(META_TAG))
        with write_batch(keyspace) as batch:
            for key, _ in moved:
                batch.delete(key)
            batch.put(KEY_COUNT_KEY, encode_u64(decode_u64(batch.get(KEY_COUNT_KEY)) - keys))
        self.store.reload()
        system = [
            (APPLIED_KEY, encode_u64(applied)),
            (KEY_COUNT_KEY, encode_u64(keys)),
            (NOW_KEY, encode_u64(self.store.max_now_ms)),
        ]
        deleted = keyspace.get(DELETED_KEY)
        if deleted is not None:
            system.append((DELETED_KEY, deleted))
        flat: list[bytes] = []
        for key, value in sorted(moved + system):
            flat += (key, value)
        return bytes(msgpack.packb([_SNAPSHOT_VERSION, flat], use_bin_type=True))

    def absorb(self, image: bytes) -> None:
        """Add the data records and key count of a merged neighbour's `snapshot()`; keep
        this machine's applied index, take the later time."""
        if not image:
            return
        version, flat = msgpack.unpackb(image, raw=False)
        if version != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown store snapshot version {version}")
        records = dict(zip(flat[0::2], flat[1::2], strict=True))
        keyspace = self.store.keyspace
        with write_batch(keyspace) as batch:
            for key, value in records.items():
                if record_range_key(key) is not None:
                    batch.put(key, value)
            count = decode_u64(batch.get(KEY_COUNT_KEY)) + decode_u64(records.get(KEY_COUNT_KEY))
            batch.put(KEY_COUNT_KEY, encode_u64(count))
            now = max(self.store.max_now_ms, decode_u64(records.get(NOW_KEY)))
            batch.put(NOW_KEY, encode_u64(now))
        self.store.reload()

    # -- what the simulator reads --------------------------------------------------------

    def get(self, key: str) -> str | None:
        """GET on the applied state (a register client's read)."""
        reply = self.store.execute_read("get", [key.encode()], self.store.max_now_ms)
        return reply.value.decode() if isinstance(reply, Bulk) else None

    def layout(self) -> tuple[list[bytes], int]:
        """The range keys of the Redis keys held (sorted) and the bytes of every data
        record: what the placement driver sizes the region by and cuts it at."""
        rkeys: list[bytes] = []
        size = 0
        for key, value in self.store.keyspace.scan(b""):
            if record_range_key(key) is not None:
                size += len(key) + len(value)
                if key.startswith(META_TAG):
                    rkeys.append(key[1:])
        return rkeys, size


def machine_layout(inner: object) -> tuple[list[bytes], int]:
    """`SimStoreMachine.layout` of a region's inner machine, or the same figures of the
    get/put model (`cairn.sim.range_kv`) that the shard tests still drive."""
    if isinstance(inner, SimStoreMachine):
        return inner.layout()
    data = getattr(inner, "data", None)
    if not isinstance(data, dict):
        raise TypeError(f"no layout for a {type(inner).__name__}")
    size = sum(len(k) + len(v) for k, v in data.items())
    return sorted(range_key(k.encode()) for k in data), size
