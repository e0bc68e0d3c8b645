"""Stream commands (Redis 7.0): XADD, XTRIM, XDEL, XLEN, XSETID here; XRANGE, XREVRANGE,
XREAD and XINFO in `stream_read`; the layout in `stream_store`, ids in `stream_ids`.

XADD `*` takes its milliseconds from the command's `now_ms` (the same on every replica)
with Redis's rule: the larger of now and the last id's ms, the sequence after the last
id's when they are equal. The last id is replicated state, so ids never go backwards
across leader changes or clock steps.

XREAD is a write command in Cairn's table (Redis flags it readonly): a client parked by
XREAD BLOCK must travel through Raft like BLPOP does. Without BLOCK it writes nothing.
Consumer groups (XGROUP, XACK, XPENDING in `stream_groups`; XREADGROUP, XCLAIM, XAUTOCLAIM
in `stream_group_read`) are registered here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from cairn.resp.reply import NULL, OK, Bulk, ErrorReply, Integer, Reply
from cairn.store.commands import stream_group_read, stream_groups, stream_read
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.define import K1, NOKEYS, RF, WDF, WF, W, cmd
from cairn.store.commands.spec import NO_SUCH_KEY, SYNTAX, CommandSpec, Ctx, Flag, arity_error
from cairn.store.commands.stream_holes import add_hole
from cairn.store.commands.stream_ids import MAX_ID, MIN_ID, StreamId, parse_id, strict_id
from cairn.store.commands.stream_store import (
    APPROX_LIMIT,
    Stream,
    StreamState,
    Trim,
    after_delete,
    entry_key,
    entry_ordinal,
    last_entry_id,
    lookup_stream,
    new_generation,
    put_entry,
    save,
    trim,
)
from cairn.store.db import Db
from cairn.store.notifications import STREAM

_BOTH = ErrorReply("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
_MAXLEN_NEGATIVE = ErrorReply("ERR The MAXLEN argument must be >= 0.")
_LIMIT_NEGATIVE = ErrorReply("ERR The LIMIT argument must be >= 0.")
_LIMIT_ALONE = ErrorReply(
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
)
_XTRIM_NEEDS = ErrorReply("ERR syntax error, XTRIM must be called with a trimming strategy")
_LIMIT_EXACT = ErrorReply("ERR syntax error, LIMIT cannot be used without the special ~ option")
_ZERO_ID = ErrorReply("ERR The ID specified in XADD must be greater than 0-0")
_EXHAUSTED = ErrorReply(
    "ERR The stream has exhausted the last possible ID, unable to add more items"
)
_TOO_SMALL = ErrorReply(
    "ERR The ID specified in XADD is equal or smaller than the target stream top item"
)
_SEQ_EXHAUSTED = ErrorReply("ERR Elements are too large to be stored")
"""Redis 7.0's (odd) reply to `<ms>-*` when `<ms>`'s sequences are used up."""
_ADDED_NEGATIVE = ErrorReply("ERR entries_added must be positive")
_SETID_BELOW_DELETED = ErrorReply(
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
)
_SETID_BELOW_TOP = ErrorReply(
    "ERR The ID specified in XSETID is smaller than the target stream top item"
)
_SETID_ADDED_SMALL = ErrorReply(
    "ERR The entries_added specified in XSETID is smaller than the target stream length"
)


@dataclass(slots=True)
class _AddArgs:
    """XADD/XTRIM options as Redis's `streamParseAddOrTrimArgsOrReply` reads them."""

    maxlen: int | None = None
    minid: StreamId | None = None
    approx: bool = False
    limit: int | None = None
    nomkstream: bool = False
    id: StreamId | None = None
    seq_given: bool = True
    id_at: int = -1

    def trim(self) -> Trim | None:
        if self.maxlen is None and self.minid is None:
            return None
        limit = self.limit if self.limit is not None else (APPROX_LIMIT if self.approx else 0)
        return Trim(self.maxlen, self.minid, self.approx, limit)


def _trim_threshold(args: Sequence[bytes], i: int, opts: _AddArgs) -> int:
    """Parse MAXLEN/MINID at `i` ([~|=] then the threshold); the index of the threshold."""
    if opts.maxlen is not None or opts.minid is not None:
        raise fail(_BOTH)
    opts.approx = False
    more = len(args) - 1 - i
    if more >= 2 and args[i + 1] in (b"~", b"="):
        opts.approx = args[i + 1] == b"~"
        i += 1
    return i + 1


def _parse_add_or_trim(args: Sequence[bytes], xadd: bool) -> _AddArgs:
    opts = _AddArgs()
    i = 1
    while i < len(args):
        option, more = args[i].lower(), len(args) - 1 - i
        if xadd and args[i] == b"*":
            opts.id_at = i
            break
        if option in (b"maxlen", b"minid") and more:
            at = _trim_threshold(args, i, opts)
            if option == b"maxlen":
                opts.maxlen = int_arg(args[at])
                if opts.maxlen < 0:
                    raise fail(_MAXLEN_NEGATIVE)
            else:
                opts.minid = strict_id(args[at])
            i = at + 1
        elif option == b"limit" and more:
            opts.limit = int_arg(args[i + 1])
            if opts.limit < 0:
                raise fail(_LIMIT_NEGATIVE)
            i += 2
        elif xadd and option == b"nomkstream":
            opts.nomkstream = True
            i += 1
        elif xadd:
            opts.id, opts.seq_given = parse_id(args[i], 0, strict=True, seq_star=True)
            opts.id_at = i
            break
        else:
            raise fail(SYNTAX)
    if xadd and opts.id_at < 0:
        opts.id_at = len(args)
    _check_trim_options(opts, xadd)
    return opts


def _check_trim_options(opts: _AddArgs, xadd: bool) -> None:
    strategy = opts.maxlen is not None or opts.minid is not None
    if opts.limit and not strategy:
        raise fail(_LIMIT_ALONE)
    if not xadd and not strategy:
        raise fail(_XTRIM_NEEDS)
    if opts.limit is not None and not opts.approx:
        raise fail(_LIMIT_EXACT)


def _next_id(state: StreamState, opts: _AddArgs, now_ms: int) -> StreamId:
    """The new entry's id (`streamAppendItem`): `*` from `now_ms`, `ms-*` the next
    sequence of that ms, or the explicit id; it must exceed the last id."""
    last = state.last_id
    if opts.id is None:
        if now_ms > last.ms:
            return StreamId(now_ms, 0)
        following = last.next()
        assert following is not None  # an exhausted stream was refused before
        return following
    if opts.seq_given:
        new = opts.id
    elif opts.id.ms == last.ms:
        if last.seq == MAX_ID.seq:
            raise fail(_SEQ_EXHAUSTED)
        new = StreamId(last.ms, last.seq + 1)
    else:
        new = opts.id
    if new <= last:
        raise fail(_TOO_SMALL)
    return new


def cmd_xadd(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value
    [field value ...]."""
    opts = _parse_add_or_trim(args, xadd=True)
    fields = tuple(args[opts.id_at + 1 :])
    if len(fields) < 2 or len(fields) % 2:
        raise fail(arity_error("xadd"))
    if opts.id is not None and opts.seq_given and opts.id == MIN_ID:
        raise fail(_ZERO_ID)
    key = args[0]
    stream = lookup_stream(ctx.db, key)
    if stream is None and opts.nomkstream:
        return NULL
    state = StreamState() if stream is None else stream.state
    if state.last_id == MAX_ID:
        raise fail(_EXHAUSTED)
    new = _next_id(state, opts, ctx.now_ms)
    put_entry(ctx.db, key, state, new, fields)
    length = state.length + 1
    state = StreamState(  # not dataclasses.replace: this is XADD's hot path
        length=length,
        last_id=new,
        first_id=new if length == 1 else state.first_id,
        max_deleted=state.max_deleted,
        entries_added=state.entries_added + 1,
        groups=state.groups,
        cut=state.cut,
        cut_ord=state.cut_ord,
        next_ord=state.next_ord + 1,
        gen=state.gen,
        reclaim=state.reclaim,
    )
    how = opts.trim()
    trimmed = 0
    if how is not None:
        state, trimmed = trim(ctx.db, key, state, how)
    save(ctx.db, key, stream, state)
    ctx.notify(STREAM, "xadd", key)
    if trimmed:
        ctx.notify(STREAM, "xtrim", key)
    return Bulk(new.text())


def cmd_xtrim(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n]."""
    opts = _parse_add_or_trim(args, xadd=False)
    how = opts.trim()
    assert how is not None
    stream = lookup_stream(ctx.db, args[0])
    if stream is None:
        return Integer(0)
    state, deleted = trim(ctx.db, args[0], stream.state, how)
    if deleted:
        save(ctx.db, args[0], stream, state)
        ctx.notify(STREAM, "xtrim", args[0])
    return Integer(deleted)


def cmd_xdel(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XDEL key id [id ...]: the number of entries deleted (an emptied stream stays)."""
    stream = lookup_stream(ctx.db, args[0])
    if stream is None:
        return Integer(0)
    ids = [strict_id(data) for data in args[1:]]
    state, deleted, first_gone = stream.state, 0, False
    for entry_id in ids:
        ordinal = entry_ordinal(ctx.db, args[0], state, entry_id)
        if ordinal is None:
            continue
        ctx.db.delete_field(args[0], entry_key(state.gen, entry_id))
        add_hole(ctx.db, args[0], ordinal, 1)
        first_gone = first_gone or entry_id == state.first_id
        if entry_id > state.max_deleted:
            state = replace(state, max_deleted=entry_id)
        deleted += 1
    if deleted:
        state = after_delete(ctx.db, args[0], state, deleted, first_gone)
        save(ctx.db, args[0], stream, state)
        ctx.notify(STREAM, "xdel", args[0])
    return Integer(deleted)


def cmd_xlen(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XLEN key: the number of entries (0 for a missing key)."""
    stream = lookup_stream(ctx.db, args[0])
    return Integer(0 if stream is None else stream.state.length)


def _setid_options(args: Sequence[bytes], new: StreamId) -> tuple[int | None, StreamId]:
    """XSETID's ENTRIESADDED and MAXDELETEDID (None / 0-0 when not given)."""
    added, max_deleted = None, MIN_ID
    i = 2
    while i < len(args):
        option, more = args[i].lower(), len(args) - 1 - i
        if option == b"entriesadded" and more:
            added = int_arg(args[i + 1])
            if added < 0:
                raise fail(_ADDED_NEGATIVE)
        elif option == b"maxdeletedid" and more:
            max_deleted = strict_id(args[i + 1])
            if new < max_deleted:
                raise fail(_SETID_BELOW_DELETED)
        else:
            raise fail(SYNTAX)
        i += 2
    return added, max_deleted


def cmd_xsetid(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]."""
    new = strict_id(args[1])
    added, max_deleted = _setid_options(args, new)
    stream = lookup_stream(ctx.db, args[0])
    if stream is None:
        raise fail(NO_SUCH_KEY)
    state = stream.state
    if state.length:
        top = _top(ctx.db, stream)
        if new < top:
            raise fail(_SETID_BELOW_TOP)
        if added is not None and state.length > added:
            raise fail(_SETID_ADDED_SMALL)
    elif new < state.cut:
        state = new_generation(state)
    state = replace(state, last_id=new)
    if added is not None:
        state = replace(state, entries_added=added)
    if max_deleted != MIN_ID:
        state = replace(state, max_deleted=max_deleted)
    save(ctx.db, args[0], stream, state)
    ctx.notify(STREAM, "xsetid", args[0])
    return OK


def _top(db: Db, stream: Stream) -> StreamId:
    top = last_entry_id(db, stream.key, stream.state)
    assert top is not None
    return top


_WRITE_ACL = "@write @stream @fast"
_SLOW_WRITE_ACL = "@write @stream @slow"
_READ_ACL = "@read @stream @slow"
_READ_FAST_ACL = "@read @stream @fast"
_XREAD_FLAGS = frozenset({Flag.WRITE, Flag.BLOCKING})


def _doc(since: str, summary: str, complexity: str = "O(1)") -> tuple[str, str, str, str]:
    return ("stream", since, complexity, summary)


def xread_keys(argv: Sequence[bytes]) -> list[bytes]:
    """XREAD's keys: the first half of the arguments after STREAMS."""
    for i in range(1, len(argv)):
        if argv[i].lower() == b"streams":
            rest = argv[i + 1 :]
            return list(rest[: len(rest) // 2])
    return []


COMMANDS: tuple[CommandSpec, ...] = (
    cmd(
        "xadd",
        -5,
        WDF,
        K1,
        _doc("5.0.0", "Append an entry to a stream, optionally trimming it.", "O(1) + trimmed"),
        _WRITE_ACL,
        cmd_xadd,
        ("nondeterministic_output",),
    ),
    cmd(
        "xtrim",
        -4,
        W,
        K1,
        _doc("5.0.0", "Trim a stream by length or by id.", "O(N) in the entries trimmed"),
        _SLOW_WRITE_ACL,
        cmd_xtrim,
        ("nondeterministic_output",),
    ),
    cmd(
        "xdel",
        -3,
        WF,
        K1,
        _doc("5.0.0", "Delete entries of a stream.", "O(N) in the ids given"),
        _WRITE_ACL,
        cmd_xdel,
    ),
    cmd("xlen", 2, RF, K1, _doc("5.0.0", "The number of entries."), _READ_FAST_ACL, cmd_xlen),
    cmd(
        "xsetid",
        -3,
        WDF,
        K1,
        _doc("5.0.0", "Set a stream's last id and counters."),
        _WRITE_ACL,
        cmd_xsetid,
    ),
    cmd(
        "xrange",
        -4,
        frozenset({Flag.READONLY}),
        K1,
        _doc("5.0.0", "Entries in an id range.", "O(N) in the entries returned"),
        _READ_ACL,
        stream_read.cmd_xrange,
    ),
    cmd(
        "xrevrange",
        -4,
        frozenset({Flag.READONLY}),
        K1,
        _doc("5.0.0", "Entries in an id range, last first.", "O(N) in the entries returned"),
        _READ_ACL,
        stream_read.cmd_xrevrange,
    ),
    cmd(
        "xread",
        -4,
        _XREAD_FLAGS,
        NOKEYS,
        _doc("5.0.0", "Entries after ids in streams, or wait for them.", "O(N) returned"),
        "@read @stream @slow @blocking",
        stream_read.cmd_xread,
        key_finder=xread_keys,
    ),
    cmd(
        "xinfo",
        -2,
        frozenset({Flag.READONLY}),
        (2, 2, 1),
        _doc("5.0.0", "Information about a stream.", "O(1), O(N) with FULL"),
        _READ_ACL,
        stream_read.cmd_xinfo,
    ),
    cmd(
        "xgroup",
        -2,
        W,
        (2, 2, 1),
        _doc("5.0.0", "Create, change and destroy consumer groups and consumers."),
        _SLOW_WRITE_ACL,
        stream_groups.cmd_xgroup,
    ),
    cmd(
        "xreadgroup",
        -7,
        _XREAD_FLAGS,
        NOKEYS,
        _doc("5.0.0", "Deliver entries to a consumer of a group, or wait.", "O(N) returned"),
        "@write @stream @slow @blocking",
        stream_group_read.cmd_xreadgroup,
        key_finder=stream_group_read.xreadgroup_keys,
    ),
    cmd(
        "xack",
        -4,
        WF,
        K1,
        _doc("5.0.0", "Acknowledge pending entries of a group.", "O(1) for each id"),
        _WRITE_ACL,
        stream_groups.cmd_xack,
    ),
    cmd(
        "xpending",
        -3,
        frozenset({Flag.READONLY}),
        K1,
        _doc("5.0.0", "A group's pending entries.", "O(N) in the entries returned"),
        _READ_ACL,
        stream_groups.cmd_xpending,
    ),
    cmd(
        "xclaim",
        -6,
        WF,
        K1,
        _doc("5.0.0", "Take pending entries over for a consumer.", "O(log N) for each id"),
        _WRITE_ACL,
        stream_group_read.cmd_xclaim,
        ("nondeterministic_output",),
    ),
    cmd(
        "xautoclaim",
        -6,
        WF,
        K1,
        _doc("6.2.0", "Take idle pending entries over, scanning the PEL.", "O(1) per entry"),
        _WRITE_ACL,
        stream_group_read.cmd_xautoclaim,
        ("nondeterministic_output",),
    ),
)
"""Every stream command's table entry (`table.COMMANDS` gathers them)."""
