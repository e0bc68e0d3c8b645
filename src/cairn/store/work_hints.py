"""What a region's background walks may find, known from the entries it applied: so a
region whose keys have no TTL, whose streams have nothing trimmed, and that holds no
transaction status or IDEMPOTENT request record costs its leader nothing each second.

Theory of operation. The leader of a region looks for background work on a timer: keys
to expire (`StoreMachine.expired_keys`, an incremental walk of the keys), streams with
trimmed records to reclaim (`StoreMachine.reclaimable_streams`, the same kind of walk),
stale transaction status records and expired IDEMPOTENT request ids (a read each). Each
of these kinds of work is created only by certain entries, and `entry_hints` names, for
an entry about to be applied, the kinds it may create (a bit mask: `VOLATILE`, a key may
have gained a TTL; `TRIMMED`, a stream may have gained trimmed records; `STATUSES`,
status records may have been written or deleted; `REQUESTS`, the request table may have
changed). A plain SET names none: it gives its key no TTL and trims nothing.

`WorkHints` keeps what the machine knows, in memory:

- for the two walks, a `LapHint` each: `possible` (False: there is surely nothing to
  find, the walk is skipped without a read), and whether the current lap met work or an
  entry that may create such work was applied since it began. A lap that ends without
  either proves the scope holds nothing for that walk: every record was seen after the
  lap began or was written by an entry that would have marked it (keys move only through
  commands that are themselves marked: RENAME, COPY, RESTORE). For the expiry walk, a lap
  that met only keys whose TTL lies ahead proves nothing expires before the earliest of
  them (`due`): the walk waits until then, unless an entry marks it first;
- for status records and request ids, a dirty flag: the machine reads again (one short
  read, `StoreMachine.may_hold_statuses`, `has_expired_requests`) only after an entry
  that may have changed them, and otherwise answers from what it read last.

Everything starts unknown (possible, marked) when the machine (re)loads: after a restart,
a snapshot, a split or a merge, the first lap of each walk re-proves the region quiet.
Only the leader's look consults the hints; every replica keeps them from the same
entries (an apply pays one dict lookup), so a new leader inherits what its machine knows.
The hints are never part of the replicated state, an image or a reply: a wrong "maybe"
costs a walk, and "surely nothing" is only concluded as described above.

The classification is conservative: a command not named here (a new command, an unknown
internal one) may create every kind of work, so adding a command can make walks run more
often, never skip work. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cairn.store.commands.table import EXPIRE_DELETE
from cairn.store.idempotency_entries import IDEM_COMMAND, PURGE_COMMAND
from cairn.store.reclaim import RECLAIM_COMMAND
from cairn.store.scripting.effects import EFFECTS_COMMAND
from cairn.store.transaction import TXN_COMMAND, WATCH_COMMAND, decode_transaction
from cairn.store.txn_locks import GC_COMMAND

VOLATILE = 1
"""A key may have been given a TTL (the expiry walk may find something)."""
TRIMMED = 2
"""A stream may have been trimmed (the stream walk may find records to reclaim)."""
STATUSES = 4
"""Transaction status records may have been written or deleted."""
REQUESTS = 8
"""The IDEMPOTENT request table may have changed (ids added or dropped)."""
ALL = VOLATILE | TRIMMED | STATUSES | REQUESTS
"""What an entry the table does not know may create."""

_TTL_OPTIONS = frozenset({b"EX", b"PX", b"EXAT", b"PXAT"})
"""SET's and GETEX's options that give the key a TTL."""


def _names(text: str) -> list[str]:
    return text.split()


_QUIET_COMMANDS = _names(
    # strings: none gives its key a TTL (those that rewrite a key keep or clear its TTL)
    "append decr decrby getdel getset incr incrby incrbyfloat mset msetnx setnx setrange "
    # the other types' writes: a destination they create has no TTL
    "bitfield bitop setbit geoadd georadius georadiusbymember geosearchstore "
    "hdel hincrby hincrbyfloat hmset hset hsetnx pfadd pfmerge "
    "blmove blmpop blpop brpop brpoplpush linsert lmove lmpop lpop lpush lpushx lrem lset "
    "ltrim rpop rpoplpush rpush rpushx "
    "sadd sdiffstore sinterstore smove spop srem sunionstore "
    "bzmpop bzpopmax bzpopmin zadd zdiffstore zincrby zinterstore zmpop zpopmax zpopmin "
    "zrangestore zrem zremrangebylex zremrangebyrank zremrangebyscore zunionstore "
    # deletions only
    "del unlink persist sort flushall flushdb"
)
"""Writes that create no kind of background work (`sort` stores without a TTL)."""

_FIXED: dict[str, int] = dict.fromkeys(_QUIET_COMMANDS, 0)
_FIXED.update(dict.fromkeys(_names("setex psetex"), VOLATILE))
_FIXED.update(  # keys that move or arrive whole keep whatever TTL and trim they had
    dict.fromkeys(
        _names("copy expire expireat pexpire pexpireat rename renamenx restore"),
        VOLATILE | TRIMMED,
    )
)
# A stream's cut moves (`stream_store._cut`, `new_generation`) only by XADD's trimming,
# XTRIM and XSETID; the other stream writes never add trimmed records.
_FIXED.update(dict.fromkeys(_names("xadd xtrim xsetid"), TRIMMED))
_FIXED.update(dict.fromkeys(_names("xack xautoclaim xclaim xdel xgroup xread xreadgroup"), 0))
_FIXED.update(dict.fromkeys([WATCH_COMMAND, EXPIRE_DELETE, RECLAIM_COMMAND], 0))
_FIXED[GC_COMMAND] = STATUSES
_FIXED[PURGE_COMMAND] = REQUESTS
_FIXED[EFFECTS_COMMAND] = VOLATILE | TRIMMED  # a script's records: any key's, no table's
"""The hints of every command whose hints do not depend on its arguments."""


def _set_hints(args: Sequence[bytes]) -> int:
    """SET key value [options]: VOLATILE with EX, PX, EXAT or PXAT (KEEPTTL keeps)."""
    if len(args) <= 2:
        return 0
    return VOLATILE if any(a.upper() in _TTL_OPTIONS for a in args[2:]) else 0


def _getex_hints(args: Sequence[bytes]) -> int:
    """GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]."""
    return VOLATILE if any(a.upper() in _TTL_OPTIONS for a in args[1:]) else 0


def _transaction_hints(args: Sequence[bytes]) -> int:
    """`cairn.exec`: what its commands may create."""
    try:
        commands = decode_transaction(args[0]).commands
    except (ValueError, IndexError):
        return 0  # applied as an error: nothing written
    hints = 0
    for argv in commands:
        hints |= entry_hints(argv[0].decode("utf-8", "replace").lower(), argv[1:])
    return hints


def _idempotent_hints(args: Sequence[bytes]) -> int:
    """`cairn.idem <id> <ttl> <max ids> <command> [args ...]`: the table changes, and
    the wrapped command may create what it creates untagged."""
    if len(args) < 4:
        return REQUESTS
    return REQUESTS | entry_hints(args[3].decode("utf-8", "replace").lower(), args[4:])


_BY_ARGUMENTS: dict[str, Callable[[Sequence[bytes]], int]] = {
    "set": _set_hints,
    "getex": _getex_hints,
    TXN_COMMAND: _transaction_hints,
    IDEM_COMMAND: _idempotent_hints,
}


def entry_hints(name: str, args: Sequence[bytes]) -> int:
    """The kinds of background work (bit mask) applying command `name` with `args` (the
    name left out, as an entry carries them) may create; `ALL` for a command not known
    here."""
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed
    by_arguments = _BY_ARGUMENTS.get(name)
    return ALL if by_arguments is None else by_arguments(args)


class LapHint:
    """Whether one incremental walk may find anything, and from when (module docstring).

    Invariant: `possible` is False only if a whole lap of the walk met nothing and no
    entry that may create its work was applied since that lap began; `due` is set only
    if such a lap met nothing but things with a deadline (keys with a TTL), `due` the
    earliest: nothing is work before it.
    """

    __slots__ = ("_busy", "_earliest", "_marked", "due", "possible")

    def __init__(self) -> None:
        self.possible = True
        self.due: int | None = None
        self._marked = True
        self._busy = False
        self._earliest: int | None = None

    def idle_at(self, now_ms: int) -> bool:
        """Whether a look at `now_ms` surely finds nothing (it may be skipped)."""
        return not self.possible or (self.due is not None and now_ms < self.due)

    def mark(self) -> None:
        """An entry that may create this walk's work was applied."""
        self.possible = True
        self.due = None
        self._marked = True

    def lap_begins(self) -> None:
        """The walk starts over from the scope's first key."""
        self.due = None
        self._marked = self._busy = False
        self._earliest = None

    def met(self, deadline: int | None = None) -> None:
        """The walk met work (`deadline` None), or something that becomes work at
        `deadline` (a key's expiry)."""
        if deadline is None:
            self._busy = True
        elif self._earliest is None or deadline < self._earliest:
            self._earliest = deadline

    def lap_ends(self) -> None:
        """The walk went past the scope's last key: a lap without entries and work
        proves it quiet (until its earliest deadline, if it met any)."""
        if self._marked or self._busy:
            return
        if self._earliest is None:
            self.possible = False
        else:
            self.due = self._earliest


class WorkHints:
    """What a machine knows of its background work (module docstring)."""

    __slots__ = ("expiry", "requests_dirty", "statuses_dirty", "streams")

    def __init__(self) -> None:
        self.expiry = LapHint()
        """The expiry walk's (`VOLATILE`)."""
        self.streams = LapHint()
        """The stream walk's (`TRIMMED`)."""
        self.statuses_dirty = True
        """Whether status records may have changed since the machine last read."""
        self.requests_dirty = True
        """Whether the request table may have changed since the machine last read."""

    def note(self, hints: int) -> None:
        """An entry with `hints` (`entry_hints`) was applied."""
        if hints & VOLATILE:
            self.expiry.mark()
        if hints & TRIMMED:
            self.streams.mark()
        if hints & STATUSES:
            self.statuses_dirty = True
        if hints & REQUESTS:
            self.requests_dirty = True


__all__ = [
    "ALL",
    "REQUESTS",
    "STATUSES",
    "TRIMMED",
    "VOLATILE",
    "LapHint",
    "WorkHints",
    "entry_hints",
]
