"""The real Redis command state machine (`cairn.store`) under the simulator's clients.

Runs in this mode drive the same `StoreMachine` that `cairn server` replicates, on an
in-memory keyspace: put is SET, append is APPEND, a read is GET served on the applied
state. Redis has no compare-and-set, so clients in this mode do not issue cas.
"""

from __future__ import annotations

import enum

from cairn.resp.reply import Bulk
from cairn.sim.kv_machine import KVCommand, KVMachine, KVOp
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.machine import StoreMachine, encode_command

EPOCH_MS = 1_700_000_000_000
"""Virtual time zero as a Unix time in ms, so entries carry plausible timestamps."""


class MachineKind(enum.Enum):
    """Which state machine a run replicates."""

    KV = "kv"
    """The simulator's own model (get, put, append, cas)."""
    REDIS = "redis"
    """`cairn.store`'s Redis commands (GET, SET, APPEND)."""


class RedisSimMachine(StoreMachine):
    """A `StoreMachine` on a `MemoryKeyspace`, readable the way sim clients read."""

    def __init__(self) -> None:
        super().__init__(MemoryKeyspace())

    def get(self, key: str) -> str | None:
        """GET on the applied state (the simulator sets no expiry, so time is moot)."""
        reply = self.execute_read("get", [key.encode()], self.max_now_ms)
        return reply.value.decode() if isinstance(reply, Bulk) else None


SimMachine = KVMachine | RedisSimMachine


def new_machine(kind: MachineKind) -> SimMachine:
    """A fresh, empty machine of `kind`."""
    return RedisSimMachine() if kind is MachineKind.REDIS else KVMachine()


def encode_for(kind: MachineKind, cmd: KVCommand, now_ns: int) -> bytes:
    """The entry data a client proposes for `cmd` to a machine of `kind`."""
    if kind is MachineKind.KV:
        return cmd.encode()
    if cmd.op is KVOp.CAS:
        raise ValueError("Redis has no compare-and-set; clients must not send cas")
    name = "set" if cmd.op is KVOp.PUT else "append"
    now_ms = EPOCH_MS + now_ns // 1_000_000
    return encode_command(name, [cmd.key.encode(), cmd.value.encode()], now_ms)
