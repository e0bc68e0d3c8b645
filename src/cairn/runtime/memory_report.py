"""MEMORY STATS | DOCTOR | MALLOC-STATS | PURGE | HELP: this node's memory, as Redis 7.0
names it. MEMORY USAGE names a key and is routed to its region (`cairn.store.commands.memory`).

Cairn is a Python process whose data lives in LMDB's memory-mapped file, so the figures
are the process' (`cairn.runtime.info`): `total.allocated` is the resident set size,
`peak.allocated` its peak, `clients.normal` the input and output buffers of this node's
clients, `keys.count` the keys of the regions hosted here. The fields of allocations
Cairn does not make (replication backlog, AOF buffer, Lua caches, the allocator's own
figures) are left out, never invented. DOCTOR applies Redis' first test (an empty
instance); the others read allocator figures a Python process does not have, so a
non-empty node gets Redis' "no issue found" report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.resp.reply import (
    OK,
    Array,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    Reply,
    SimpleString,
    Verbatim,
)
from cairn.runtime.info import client_buffers, peak_rss_bytes, rss_bytes

if TYPE_CHECKING:
    from cairn.runtime.node import Node

MEMORY_HELP = (
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
)
NO_ISSUE = (
    "Hi Sam, I can't find any memory issue in your instance. "
    "I can only account for what occurs on this base.\n"
)
EMPTY = (
    "Hi Sam, this instance is empty or is using very little memory, "
    "my issues detector can't be used in these conditions. "
    "Please, leave for your mission on Earth and fill it with some data. "
    "The new Sam and I will be back to our programming as soon as I "
    "finished rebooting.\n"
)
NO_MALLOC_STATS = "Stats not supported for the current allocator"
_NODE_LEVEL = {
    b"stats": 2,
    b"doctor": 2,
    b"malloc-stats": 2,
    b"purge": 2,
    b"help": 2,
    b"usage": -3,  # only its arity error is answered here: with a key it is routed
}


def is_node_level(args: Sequence[bytes]) -> bool:
    """Whether MEMORY `args` (name first) is answered by this node rather than routed:
    every form but USAGE with a key (the bare MEMORY's arity error the table gives)."""
    return len(args) == 2 or (len(args) > 2 and args[1].lower() != b"usage")


def memory_command(node: Node, protocol: int, args: Sequence[bytes]) -> Reply:
    """MEMORY STATS | DOCTOR | MALLOC-STATS | PURGE | HELP (`args` without the name);
    DOCTOR's and MALLOC-STATS' text is verbatim in RESP3, as in Redis."""
    sub = args[0].lower()
    arity = _NODE_LEVEL.get(sub)
    if arity is None:
        name = args[0].split(b"\0")[0][:128].decode("utf-8", "replace")
        return ErrorReply(f"ERR unknown subcommand '{name}'. Try MEMORY HELP.")
    if len(args) + 1 != arity if arity > 0 else len(args) + 1 < -arity:
        return ErrorReply(f"ERR wrong number of arguments for 'memory|{sub.decode()}' command")
    if sub == b"stats":
        return memory_stats(node)
    if sub == b"doctor":
        return _text(doctor_report(node.key_count()), protocol)
    if sub == b"malloc-stats":
        return _text(NO_MALLOC_STATS, protocol)
    if sub == b"purge":
        return OK
    return Array(tuple(SimpleString(line) for line in MEMORY_HELP))


def _text(text: str, protocol: int) -> Reply:
    return Verbatim(text.encode()) if protocol == 3 else Bulk(text.encode())


def doctor_report(keys: int) -> str:
    """Redis' report for an empty instance, or its "no issue" one."""
    return EMPTY if keys == 0 else NO_ISSUE


def memory_stats(node: Node) -> Reply:
    """MEMORY STATS with the fields Cairn has a figure for, in Redis' order."""
    rss = rss_bytes()
    peak = max(peak_rss_bytes(), rss)
    keys = node.key_count()
    fields: list[tuple[str, Reply]] = [
        ("peak.allocated", Integer(peak)),
        ("total.allocated", Integer(rss)),
        ("replication.backlog", Integer(0)),
        ("clients.slaves", Integer(0)),
        ("clients.normal", Integer(client_buffers(node))),
        ("aof.buffer", Integer(0)),
        ("keys.count", Integer(keys)),
        ("keys.bytes-per-key", Integer(rss // keys if keys else 0)),
        ("peak.percentage", Double(100.0 * rss / peak if peak else 0.0)),
    ]
    return Map(tuple((Bulk(name.encode()), value) for name, value in fields))
