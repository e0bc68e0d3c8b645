"""`cairn.store`: the Redis command state machine replicated by Raft (pure, no I/O).

`StoreMachine` applies write commands carried by Raft entries and serves reads; the
`commands` package holds the command table; `keyspace` the ordered byte key-value space
it runs on; `layout` how Redis values are laid out in it.
"""

from cairn.store.commands import COMMANDS, EXPIRE_DELETE, CommandSpec, Flag, classify
from cairn.store.keyspace import Keyspace, KeyspaceReader, MemoryKeyspace, WriteBatch
from cairn.store.machine import StoreMachine, decode_command, encode_command
from cairn.store.slot import SLOT_COUNT, key_slot

__all__ = [
    "COMMANDS",
    "EXPIRE_DELETE",
    "SLOT_COUNT",
    "CommandSpec",
    "Flag",
    "Keyspace",
    "KeyspaceReader",
    "MemoryKeyspace",
    "StoreMachine",
    "WriteBatch",
    "classify",
    "decode_command",
    "encode_command",
    "key_slot",
]
