"""Reading streams: XRANGE, XREVRANGE, XREAD (with BLOCK) and XINFO STREAM, replies as
Redis 7.0 sends them.

XREAD BLOCK is served like the other blocking commands (`cairn.store.commands.blocking`):
it is a write command (so the node can park it) that writes nothing. When no stream has
an entry after its id it returns `Blocked` carrying the arguments of its later attempts:
`$` resolved to the stream's last id at this first attempt (Redis's rule: only entries
added after the command blocked are served) and COUNT defaulting to 1000, as Redis serves
a client it unblocks.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    NestedMap,
    Reply,
    SimpleString,
)
from cairn.store.commands import stream_groups
from cairn.store.commands.blocking import blocked, parse_ms_timeout
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.spec import NO_SUCH_KEY, SYNTAX, Ctx, arity_error, text_of
from cairn.store.commands.stream_ids import (
    MAX_ID,
    MIN_ID,
    StreamId,
    interval_end,
    interval_start,
    strict_id,
)
from cairn.store.commands.stream_store import (
    NODE_ENTRIES,
    Entry,
    Stream,
    entries,
    lookup_stream,
)
from cairn.store.numbers import format_int

BLOCKED_COUNT = 1000
"""The COUNT an unblocked XREAD without one is served with (Redis's
XREAD_BLOCKED_DEFAULT_COUNT)."""

_UNBALANCED = ErrorReply(
    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
)
_GROUP_ONLY = ErrorReply(
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
)
_NOACK_ONLY = ErrorReply(
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
)
_GT_ONLY = ErrorReply(
    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
    "<group> <consumer> option."
)


def entry_reply(entry: Entry) -> Array:
    """One entry as Redis replies it: [id, [field, value, ...]]."""
    entry_id, fields = entry
    return Array((Bulk(entry_id.text()), Array(tuple(Bulk(item) for item in fields))))


def entries_reply(rows: list[Entry]) -> Array:
    """A list of entries."""
    return Array(tuple(entry_reply(row) for row in rows))


# -- XRANGE / XREVRANGE ---------------------------------------------------------------


def _range_count(args: Sequence[bytes]) -> int | None:
    """The COUNT option of XRANGE/XREVRANGE (None: none given; negative counts as 0)."""
    count = None
    i = 3
    while i < len(args):
        if args[i].lower() == b"count" and i + 1 < len(args):
            count = max(0, int_arg(args[i + 1]))
            i += 2
        else:
            raise fail(SYNTAX)
    return count


def _range(ctx: Ctx, args: Sequence[bytes], rev: bool) -> Reply:
    start_arg, end_arg = (args[2], args[1]) if rev else (args[1], args[2])
    start, end = interval_start(start_arg), interval_end(end_arg)
    count = _range_count(args)
    stream = lookup_stream(ctx.db, args[0])
    if stream is None:
        return Array(())
    if count == 0:
        return NULL_ARRAY
    return entries_reply(entries(ctx.db, args[0], stream.state, start, end, count, rev))


def cmd_xrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XRANGE key start end [COUNT n]."""
    return _range(ctx, args, rev=False)


def cmd_xrevrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XREVRANGE key end start [COUNT n]."""
    return _range(ctx, args, rev=True)


# -- XREAD ----------------------------------------------------------------------------


def _xread_options(args: Sequence[bytes]) -> tuple[int | None, int, int]:
    """(block timeout ms or None, count (0: all), index of the first key) of XREAD."""
    timeout, count = None, 0
    i = 0
    while i < len(args):
        option, more = args[i].lower(), len(args) - i - 1
        if option == b"block" and more:
            timeout = parse_ms_timeout(args[i + 1])
            i += 2
        elif option == b"count" and more:
            count = max(0, int_arg(args[i + 1]))
            i += 2
        elif option == b"streams" and more:
            if (more % 2) != 0:
                raise fail(_UNBALANCED)
            return timeout, count, i + 1
        elif option == b"group" and more >= 2:
            raise fail(_GROUP_ONLY)
        elif option == b"noack":
            raise fail(_NOACK_ONLY)
        else:
            raise fail(SYNTAX)
    raise fail(SYNTAX)


def _xread_ids(ctx: Ctx, keys: Sequence[bytes], raw: Sequence[bytes]) -> list[StreamId]:
    """The id each stream is read after: `$` is its last id (0-0 if missing)."""
    ids = []
    for key, data in zip(keys, raw, strict=True):
        stream = lookup_stream(ctx.db, key)
        if data == b"$":
            ids.append(MIN_ID if stream is None else stream.state.last_id)
        elif data == b">":
            raise fail(_GT_ONLY)
        else:
            ids.append(strict_id(data))
    return ids


def cmd_xread(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...]."""
    timeout, count, first = _xread_options(args)
    half = (len(args) - first) // 2
    keys = args[first : first + half]
    ids = _xread_ids(ctx, keys, args[first + half :])
    served: list[tuple[Reply, Reply]] = []
    for key, after in zip(keys, ids, strict=True):
        start = after.next()
        stream = lookup_stream(ctx.db, key)
        if stream is None or start is None or not stream.state.length:
            continue
        rows = entries(ctx.db, key, stream.state, start, MAX_ID, count or None)
        if rows:
            served.append((Bulk(key), entries_reply(rows)))
    if served:
        return NestedMap(tuple(served))
    if timeout is None:
        return NULL_ARRAY
    retry = (
        b"BLOCK",
        format_int(timeout),
        b"COUNT",
        format_int(count or BLOCKED_COUNT),
        b"STREAMS",
        *keys,
        *(i.text() for i in ids),
    )
    raise fail(blocked(tuple(dict.fromkeys(keys)), timeout, retry))


# -- XINFO STREAM ---------------------------------------------------------------------

_FULL_COUNT = 10


def _subcommand_syntax(name: bytes) -> ErrorReply:
    return ErrorReply(
        f"ERR unknown subcommand or wrong number of arguments for '{text_of(name)}'. "
        "Try XINFO HELP."
    )


def _info_head(stream: Stream) -> list[tuple[Reply, Reply]]:
    state = stream.state
    nodes = -(-state.length // NODE_ENTRIES)
    return [
        (Bulk(b"length"), Integer(state.length)),
        (Bulk(b"radix-tree-keys"), Integer(nodes)),
        (Bulk(b"radix-tree-nodes"), Integer(nodes + 1)),
        (Bulk(b"last-generated-id"), Bulk(state.last_id.text())),
        (Bulk(b"max-deleted-entry-id"), Bulk(state.max_deleted.text())),
        (Bulk(b"entries-added"), Integer(state.entries_added)),
        (Bulk(b"recorded-first-entry-id"), Bulk(state.first_id.text())),
    ]


def _edge(ctx: Ctx, stream: Stream, rev: bool) -> Reply:
    rows = entries(ctx.db, stream.key, stream.state, MIN_ID, MAX_ID, 1, rev)
    return entry_reply(rows[0]) if rows else NULL


def xinfo_stream(ctx: Ctx, args: Sequence[bytes], stream: Stream, sub: bytes) -> Reply:
    """XINFO STREAM key [FULL [COUNT n]] (`args` after STREAM and the key; `sub` the
    subcommand as the client wrote it, for the error)."""
    if not args:
        pairs = _info_head(stream)
        pairs.append((Bulk(b"groups"), Integer(stream.state.groups)))
        pairs.append((Bulk(b"first-entry"), _edge(ctx, stream, rev=False)))
        pairs.append((Bulk(b"last-entry"), _edge(ctx, stream, rev=True)))
        return Map(tuple(pairs))
    if len(args) not in (1, 3) or args[0].lower() != b"full":
        raise fail(_subcommand_syntax(sub))
    count = _FULL_COUNT
    if len(args) == 3:
        if args[1].lower() != b"count":
            raise fail(_subcommand_syntax(sub))
        count = int_arg(args[2])
        if count < 0:
            count = _FULL_COUNT
    rows = entries(ctx.db, stream.key, stream.state, MIN_ID, MAX_ID, count or None)
    pairs = _info_head(stream)
    pairs.append((Bulk(b"entries"), entries_reply(rows)))
    pairs.append((Bulk(b"groups"), stream_groups.xinfo_full_groups(stream, ctx.db, count)))
    return Map(tuple(pairs))


_HELP = (
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
)

_XINFO_ARITY = {b"stream": -2, b"groups": 2, b"consumers": 3}
"""Each keyed subcommand's arity counted after XINFO (negative: at least)."""


def cmd_xinfo(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP (the
    group parts in `stream_groups`)."""
    sub = args[0].lower()
    if sub == b"help":
        if len(args) != 1:
            raise fail(arity_error("xinfo|help"))
        return Array(tuple(SimpleString(line) for line in _HELP))
    arity = _XINFO_ARITY.get(sub)
    if arity is None:
        name = text_of(args[0].split(b"\0")[0][:128])
        raise fail(ErrorReply(f"ERR unknown subcommand '{name}'. Try XINFO HELP."))
    if len(args) != arity and not (arity < 0 and len(args) >= -arity):
        raise fail(arity_error(f"xinfo|{sub.decode()}"))
    stream = lookup_stream(ctx.db, args[1])
    if stream is None:
        raise fail(NO_SUCH_KEY)
    if sub == b"stream":
        return xinfo_stream(ctx, args[2:], stream, args[0])
    if sub == b"groups":
        return stream_groups.xinfo_groups(stream, ctx.db)
    return stream_groups.xinfo_consumers(ctx, stream, args[2])
