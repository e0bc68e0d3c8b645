"""The simulator's key-value machine, cut by range: what one region of a multi-raft run holds.

`KVMachine` plus what `RegionMachine` needs: which key a command touches, splitting off
the keys of a range (with their values) as an image the new region starts from, and
absorbing a merged neighbour's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgpack

from cairn.meta.region import range_key
from cairn.sim.kv_machine import KVCommand, KVMachine


class RangeKVMachine(KVMachine):
    """A `KVMachine` that is a `RangeMachine`."""

    def keys_of(self, data: bytes) -> Sequence[bytes]:
        """The one key a `KVCommand` touches."""
        return (KVCommand.decode(data).key.encode(),)

    def split_off(self, moves: Callable[[bytes], bool], applied: int) -> bytes:
        """Remove the keys whose range key `moves`; their image at `applied`."""
        moved = sorted(k for k in self.data if moves(range_key(k.encode())))
        items = [[k, self.data.pop(k)] for k in moved]
        return bytes(msgpack.packb([applied, items]))

    def absorb(self, image: bytes) -> None:
        """Add the keys of another machine's `snapshot()` (a merged neighbour's)."""
        _, items = msgpack.unpackb(image) if image else (0, [])
        for k, v in items:
            self.data[k] = v
