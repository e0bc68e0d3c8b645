"""`cairn.store`: the Redis command state machine replicated by Raft (pure, no I/O).

`StoreMachine` applies write commands carried by Raft entries and serves reads, over the
whole keyspace or one region's `Scope` of it; `carve` splits and merges region machines;
`ranges` walks and images a region's records; the `commands` package holds the command
table; `keyspace` the ordered byte key-value space it runs on; `layout` how Redis values
are laid out in it.
"""

from cairn.store.carve import CarveError, merge_machines, split_machine
from cairn.store.commands import COMMANDS, EXPIRE_DELETE, CommandSpec, Flag, classify
from cairn.store.keyspace import Keyspace, KeyspaceReader, MemoryKeyspace, WriteBatch
from cairn.store.machine import (
    KEY_NOT_IN_REGION,
    RetiredMachineError,
    StoreMachine,
    decode_command,
    encode_command,
)
from cairn.store.ranges import ImageError, KeyspaceImages, RangeImages
from cairn.store.scope import WHOLE_KEYSPACE, KeyOutOfRangeError, Scope
from cairn.store.slot import SLOT_COUNT, key_slot

__all__ = [
    "COMMANDS",
    "EXPIRE_DELETE",
    "KEY_NOT_IN_REGION",
    "SLOT_COUNT",
    "WHOLE_KEYSPACE",
    "CarveError",
    "CommandSpec",
    "Flag",
    "ImageError",
    "KeyOutOfRangeError",
    "Keyspace",
    "KeyspaceImages",
    "KeyspaceReader",
    "MemoryKeyspace",
    "RangeImages",
    "RetiredMachineError",
    "Scope",
    "StoreMachine",
    "WriteBatch",
    "classify",
    "decode_command",
    "encode_command",
    "key_slot",
    "merge_machines",
    "split_machine",
]
