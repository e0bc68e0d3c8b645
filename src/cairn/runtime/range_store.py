"""`StoreRangeMachine`: a region's durable Redis state machine, as a `RangeMachine`.

`RegionMachine` (in `cairn.shard`) wraps the application's machine and needs three
things of it beyond a `StateMachine`: the keys a command touches (to check them against
the region's range when it applies), splitting off a range, and — for the driver —
whether the state is durable. This adapter gives a region-scoped `StoreMachine` over the
node's shared `LmdbKeyspace` those three:

* `keys_of` decodes a command entry and asks the command table for its keys;
* `durable` is the keyspace's (LMDB: true), so the driver compacts the log without
  images and makes one only for a follower that fell behind it;
* `split_off` and `absorb` (merge) are refused (`SplitRefusedError`): on LMDB a split or
  merge must be written in the same transaction as the entry that applies it, which the
  node's `LmdbHostStore` does as the `RegionStorage` of every region machine
  (`cairn.runtime.host_store`); these two are reached only by a host whose store is not
  one (a test plant wrapping it), which then cannot split or merge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cairn.meta.region import Region
from cairn.resp.reply import Reply
from cairn.store.keyspace import Keyspace
from cairn.store.machine import StoreMachine, command_keys
from cairn.store.scope import Scope


class SplitRefusedError(Exception):
    """A split or merge reached a real node's machine without a `RegionStorage`."""


def region_scope(region_id: int, region: Region | None) -> Scope:
    """The keyspace scope of region `region_id` (its whole range until it knows one)."""
    if region is None:
        return Scope.region(region_id)
    return Scope.region(region_id, region.start, region.end)


class StoreRangeMachine:
    """A region-scoped `StoreMachine` seen as a `RangeMachine` (module docstring)."""

    def __init__(self, keyspace: Keyspace, region_id: int, region: Region | None) -> None:
        self.store = StoreMachine(keyspace, scope=region_scope(region_id, region))

    @property
    def applied_index(self) -> int:
        """See `StateMachine.applied_index`."""
        return self.store.applied_index

    @property
    def durable(self) -> bool:
        """See `StoreMachine.durable`."""
        return self.store.durable

    def apply(self, index: int, data: bytes) -> Reply:
        """See `StoreMachine.apply`."""
        return self.store.apply(index, data)

    def apply_many(self, entries: Sequence[tuple[int, bytes]]) -> list[Reply]:
        """See `StoreMachine.apply_many`: `RegionMachine` hands over only entries whose
        keys (`keys_of`) it found in the region's current range, so they are not checked
        a second time."""
        return self.store.apply_many(entries, in_range=True)

    def snapshot(self) -> bytes:
        """See `StoreMachine.snapshot`."""
        return self.store.snapshot()

    def restore(self, data: bytes) -> None:
        """See `StoreMachine.restore`."""
        self.store.restore(data)

    def keys_of(self, data: bytes) -> Sequence[bytes]:
        """The Redis keys of a command entry, whatever its family (`command_keys`: the
        cross-region transactions' and a script's effects too, which `RegionMachine`
        must check against its range like any other); none for a malformed or unknown
        one (the store answers those with an error and changes nothing)."""
        try:
            name, args, _ = self.store.decode(data)
        except ValueError:
            return ()
        return command_keys(name, args)

    def split_off(self, moves: Callable[[bytes], bool], applied: int) -> bytes:
        """Refused: see the module docstring."""
        raise SplitRefusedError("this host's store cannot write a split atomically")

    def absorb(self, image: bytes) -> None:
        """Refused, as `split_off`: a durable merge must be written in the transaction that
        applies it (`NodeStore.stage_merge`)."""
        raise SplitRefusedError("this host's store cannot write a merge atomically")
