"""COMMAND COUNT / INFO / DOCS / LIST replies, for any command table entry.

Clients read these at connect time (redis-cli for hints, redis-py's cluster client for key
positions), so the shapes follow Redis 7: an INFO entry is [name, arity, flags, first key,
last key, step, ACL categories, tips, key specs, subcommands].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from cairn.resp.reply import Array, Bulk, Integer, Map, NullArray, Reply, Set, SimpleString


class CommandMeta(Protocol):
    """What COMMAND needs to know of a command (store and server commands alike)."""

    @property
    def name(self) -> str: ...
    @property
    def arity(self) -> int: ...
    @property
    def first_key(self) -> int: ...
    @property
    def last_key(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def group(self) -> str: ...
    @property
    def since(self) -> str: ...
    @property
    def complexity(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def acl_categories(self) -> tuple[str, ...]: ...
    @property
    def tips(self) -> tuple[str, ...]: ...


def flag_names(meta: object) -> list[str]:
    """The command's flags as COMMAND INFO spells them."""
    flags = getattr(meta, "flags", ())
    return sorted(getattr(f, "value", f) for f in flags)


def info_entry(meta: CommandMeta) -> Reply:
    """One COMMAND INFO entry."""
    return Array(
        (
            Bulk(meta.name.lower().encode()),
            Integer(meta.arity),
            Set(tuple(SimpleString(f) for f in flag_names(meta))),
            Integer(meta.first_key),
            Integer(meta.last_key),
            Integer(meta.step),
            Set(tuple(SimpleString(c) for c in meta.acl_categories)),
            Array(tuple(Bulk(t.encode()) for t in meta.tips)),
            Array(()),
            Array(()),
        )
    )


def docs_entry(meta: CommandMeta) -> Reply:
    """One COMMAND DOCS entry (without argument descriptions)."""
    return Map(
        (
            (Bulk(b"summary"), Bulk(meta.summary.encode())),
            (Bulk(b"since"), Bulk(meta.since.encode())),
            (Bulk(b"group"), Bulk(meta.group.encode())),
            (Bulk(b"complexity"), Bulk(meta.complexity.encode())),
        )
    )


def command_reply(table: Mapping[str, CommandMeta], args: Sequence[bytes]) -> Reply | None:
    """The reply to COMMAND [subcommand ...]; None for an unknown subcommand."""
    if not args:
        return Array(tuple(info_entry(table[n]) for n in sorted(table)))
    sub = args[0].lower()
    rest = [a.decode("utf-8", "replace").lower() for a in args[1:]]
    if sub == b"count" and not rest:
        return Integer(len(table))
    if sub == b"list" and not rest:
        return Array(tuple(Bulk(n.lower().encode()) for n in sorted(table)))
    if sub == b"info":
        names = rest or sorted(table)
        return Array(tuple(info_entry(table[n]) if n in table else NullArray() for n in names))
    if sub == b"docs":
        names = [n for n in (rest or sorted(table)) if n in table]
        return Map(tuple((Bulk(n.encode()), docs_entry(table[n])) for n in names))
    return None
