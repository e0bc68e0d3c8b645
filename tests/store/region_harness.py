"""Test helpers: several region machines on one keyspace, routed like the shard router.

`Regions` cuts the keyspace at the given range-key bounds, runs one `StoreMachine` per
region on a shared `MemoryKeyspace`, and sends each command to the region of its keys
(SCAN to the region of its cursor, keyless commands to every region, merged as the router
merges them), so a test can compare the union with one whole-keyspace machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Reply
from cairn.store import KEY_NOT_IN_REGION, MemoryKeyspace, Scope, StoreMachine, encode_command
from cairn.store.commands import COMMANDS
from cairn.store.commands.scan import cursor_range_key
from cairn.store.layout import (
    META_END,
    META_TAG,
    decode_meta,
    decode_u64,
    encode_meta,
    split_meta_key,
)
from cairn.store.scope import range_key


def region_scopes(bounds: Sequence[bytes], first_id: int = 1) -> list[Scope]:
    """The scopes of the regions cut at `bounds` (sorted, distinct, non-empty)."""
    edges = [b"", *bounds, b""]
    return [Scope.region(first_id + i, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


class Regions:
    """One machine per region over a shared keyspace, with a router."""

    def __init__(self, bounds: Sequence[bytes], keyspace: MemoryKeyspace | None = None) -> None:
        self.keyspace = keyspace if keyspace is not None else MemoryKeyspace()
        scopes = region_scopes(sorted(bounds))
        self.machines = [StoreMachine(self.keyspace, scope=s) for s in scopes]
        self.indexes = {m.scope.region_id: 0 for m in self.machines}

    def machine_for(self, rkey: bytes) -> StoreMachine:
        """The machine whose range holds range key `rkey`."""
        return next(m for m in self.machines if m.scope.contains(rkey))

    def write(self, machine: StoreMachine, name: str, args: Sequence[bytes], now: int) -> Reply:
        """Apply a write as the next entry of `machine`'s log."""
        region_id = machine.scope.region_id
        self.indexes[region_id] += 1
        return machine.apply(self.indexes[region_id], encode_command(name, list(args), now))

    def call(self, name: str, args: Sequence[bytes], now: int) -> Reply:
        """Run one command; a keyed one must have all its keys in one region."""
        spec = COMMANDS[name]
        keys = spec.keys([name.encode(), *args])
        if not keys:
            return self._keyless(name, args, now)
        machine = self.machine_for(range_key(keys[0]))
        if spec.is_write:
            return self.write(machine, name, args, now)
        return machine.execute_read(name, args, now)

    def same_region(self, keys: Sequence[bytes]) -> bool:
        """Whether all `keys` fall in one region."""
        return len({self.machine_for(range_key(k)).scope.region_id for k in keys}) == 1

    def _keyless(self, name: str, args: Sequence[bytes], now: int) -> Reply:
        if name == "scan":
            position = cursor_range_key(args[0])
            return self.machine_for(position or b"").execute_read(name, args, now)
        if COMMANDS[name].is_write:
            replies = [self.write(m, name, args, now) for m in self.machines]
            return replies[0]
        replies = [m.execute_read(name, args, now) for m in self.machines]
        if name == "dbsize":
            return Integer(sum(r.value for r in replies if isinstance(r, Integer)))
        if name == "keys":
            return Array(tuple(i for r in replies if isinstance(r, Array) for i in r.items))
        raise AssertionError(f"no merge for {name}")

    def scan_all(self, now: int, count: int, limit: int = 10_000) -> list[bytes]:
        """Every key a whole SCAN iteration returns, routed call by call."""
        cursor, found = b"0", []
        for _ in range(limit):
            reply = self.call("scan", [cursor, b"COUNT", b"%d" % count], now)
            assert isinstance(reply, Array), reply
            head, keys = reply.items
            assert isinstance(head, Bulk) and isinstance(keys, Array)
            found += [k.value for k in keys.items if isinstance(k, Bulk)]
            cursor = head.value
            if cursor == b"0":
                return found
        raise AssertionError("SCAN did not finish")


def meta_records(space: MemoryKeyspace, scope: Scope | None = None) -> list[bytes]:
    """The internal keys of the M records (of `scope`)."""
    lo, hi = (META_TAG, META_END) if scope is None else scope.meta_bounds()
    return [k for k, _ in space.scan(lo, hi)]


def data_records(space: MemoryKeyspace) -> dict[bytes, bytes]:
    """Every F and M record (no system records), the metadata without its WATCH stamp
    (which names the region and log index of the last write, so differs between a
    region and the whole keyspace's machine)."""
    return {
        k: encode_meta(decode_meta(v), b"") if k.startswith(META_TAG) else v
        for k, v in space.scan(b"F", META_END)
    }


def assert_counts_exact(machine: StoreMachine) -> None:
    """The machine's total and per-slot key counts equal its M records."""
    scope = machine.scope
    space = machine.keyspace
    assert isinstance(space, MemoryKeyspace)
    keys = meta_records(space, scope)
    assert machine.key_count() == len(keys)
    by_slot = Counter(split_meta_key(k)[0] for k in keys)
    bounds = scope.slot_count_bounds()
    assert bounds is not None
    stored = {int.from_bytes(k[-2:], "big"): decode_u64(v) for k, v in space.scan(*bounds)}
    assert stored == dict(by_slot)


def is_refusal(reply: Reply) -> bool:
    """Whether `reply` is the out-of-range refusal."""
    return isinstance(reply, ErrorReply) and reply == KEY_NOT_IN_REGION
