"""Keyspace notifications: Redis 7.0's event classes, the `notify-keyspace-events` flags,
and the channel messages one event becomes.

Theory of operation. A write handler reports what it changed with `ctx.notify(CLASS,
"event", key)` (Redis's `notifyKeyspaceEvent` calls, one for one, in the same order). The
report costs nothing unless the machine collects events: `Db.events` is None then and
`notify` returns at once. When collecting, every replica computes the same list for the
same log entry (a pure function of the entry and the state), but only the region's
leader publishes it (`cairn.runtime.keyspace_events`), so a subscriber sees each event
once, in apply order. The classes are filtered when publishing, so the store needs no
configuration: it records every event of a command and the node's flags pick.

`parse_flags` and `flags_text` are Redis's `keyspaceEventsStringToFlags` and
`keyspaceEventsFlagsToString`: what CONFIG SET accepts and how CONFIG GET shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

KEYSPACE = 1 << 0
"""K: publish on `__keyspace@0__:<key>` (the message is the event name)."""
KEYEVENT = 1 << 1
"""E: publish on `__keyevent@0__:<event>` (the message is the key)."""
GENERIC = 1 << 2
"""g: type-independent commands (DEL, EXPIRE, RENAME, COPY, ...)."""
STRING = 1 << 3
"""$: string commands."""
LIST = 1 << 4
"""l: list commands."""
SET = 1 << 5
"""s: set commands."""
HASH = 1 << 6
"""h: hash commands."""
ZSET = 1 << 7
"""z: sorted set commands."""
EXPIRED = 1 << 8
"""x: a key deleted because its time to live ran out."""
EVICTED = 1 << 9
"""e: a key evicted for maxmemory (Cairn does not evict: never emitted)."""
STREAM = 1 << 10
"""t: stream commands."""
KEY_MISS = 1 << 11
"""m: a read of a missing key (not emitted by Cairn: reads are not replicated)."""
MODULE = 1 << 12
"""d: module key types (Cairn has no modules: never emitted)."""
NEW = 1 << 13
"""n: a key added to the keyspace."""

ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE
"""A: every class but m and n (Redis's NOTIFY_ALL)."""

_LETTERS = {
    "g": GENERIC,
    "$": STRING,
    "l": LIST,
    "s": SET,
    "h": HASH,
    "z": ZSET,
    "x": EXPIRED,
    "e": EVICTED,
    "t": STREAM,
    "d": MODULE,
    "n": NEW,
    "K": KEYSPACE,
    "E": KEYEVENT,
    "m": KEY_MISS,
    "A": ALL,
}
_SHOWN_CLASSES = "g$lshzxetdn"
"""The class letters CONFIG GET shows when not all of A's are set, in Redis's order."""

INVALID_FLAGS = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
"""CONFIG SET's reason for a value with another character."""

Event = tuple[int, str, bytes]
"""One notification: (class bit, event name, key)."""

_KEYSPACE_PREFIX = b"__keyspace@0__:"
_KEYEVENT_PREFIX = b"__keyevent@0__:"


def parse_flags(text: bytes) -> int | None:
    """The flags `text` names (any order, repeats allowed), or None for another character."""
    flags = 0
    for char in text.decode("latin-1"):
        bit = _LETTERS.get(char)
        if bit is None:
            return None
        flags |= bit
    return flags


def flags_text(flags: int) -> bytes:
    """How CONFIG GET shows `flags` ("AKE" for KEA)."""
    classes = "".join(c for c in _SHOWN_CLASSES if flags & _LETTERS[c])
    shown = "A" if flags & ALL == ALL else classes
    if flags & KEYSPACE:
        shown += "K"
    if flags & KEYEVENT:
        shown += "E"
    if flags & KEY_MISS:
        shown += "m"
    return shown.encode()


def publishes(flags: int) -> bool:
    """Whether `flags` can publish anything: a channel kind (K or E) and a class."""
    return bool(flags & (KEYSPACE | KEYEVENT)) and bool(flags & ~(KEYSPACE | KEYEVENT))


def channel_messages(flags: int, events: Iterable[Event]) -> list[tuple[bytes, bytes]]:
    """The (channel, message) pairs `events` publish under `flags`, in Redis's order: for
    each event of a selected class, the keyspace message, then the keyevent one."""
    out: list[tuple[bytes, bytes]] = []
    for cls, event, key in events:
        if not flags & cls:
            continue
        name = event.encode()
        if flags & KEYSPACE:
            out.append((_KEYSPACE_PREFIX + key, name))
        if flags & KEYEVENT:
            out.append((_KEYEVENT_PREFIX + name, key))
    return out
