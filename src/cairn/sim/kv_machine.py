"""The replicated key-value state machine the simulator drives: get, put, append, cas.

Commands are msgpack arrays `[op, key, *args]`; results are what a client is told:
put and append return None, cas returns whether it swapped. Reads do not go through the
log: a client reads `get(key)` once the replica says a linearizable read may be served.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgpack


class KVOp(enum.Enum):
    """A write command's kind."""

    PUT = "put"
    APPEND = "append"
    CAS = "cas"


@dataclass(frozen=True, slots=True)
class KVCommand:
    """One write: `value` is the new value (put, cas) or the suffix (append);
    `expected` is cas's precondition (None: the key must be missing)."""

    op: KVOp
    key: str
    value: str
    expected: str | None = None

    def encode(self) -> bytes:
        """The bytes proposed to Raft."""
        return bytes(msgpack.packb([self.op.value, self.key, self.value, self.expected]))

    @staticmethod
    def decode(data: bytes) -> KVCommand:
        """The inverse of `encode`."""
        op, key, value, expected = msgpack.unpackb(data)
        return KVCommand(KVOp(op), key, value, expected)


class KVMachine:
    """A dict of str to str, replicated by applying `KVCommand`s in log order.

    Invariant: `applied_index` is the index of the last command applied (or restored).
    """

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied_index = 0

    def get(self, key: str) -> str | None:
        """The current value of `key` (None when missing)."""
        return self.data.get(key)

    def apply(self, index: int, data: bytes) -> object:
        """Apply one encoded `KVCommand`; see the module docstring for results."""
        cmd = KVCommand.decode(data)
        self.applied_index = index
        current = self.data.get(cmd.key)
        if cmd.op is KVOp.PUT:
            self.data[cmd.key] = cmd.value
            return None
        if cmd.op is KVOp.APPEND:
            self.data[cmd.key] = (current or "") + cmd.value
            return None
        if current != cmd.expected:
            return False
        self.data[cmd.key] = cmd.value
        return True

    def snapshot(self) -> bytes:
        """The whole state, keys sorted so equal states give equal bytes."""
        items = [[k, self.data[k]] for k in sorted(self.data)]
        return bytes(msgpack.packb([self.applied_index, items]))

    def restore(self, data: bytes) -> None:
        """Replace the state by a `snapshot()` image."""
        index, items = msgpack.unpackb(data) if data else (0, [])
        self.applied_index = index
        self.data = {k: v for k, v in items}
