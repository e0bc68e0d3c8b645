"""Stream consumer groups (Redis 7.0): XGROUP, XACK and XPENDING here, the group parts of
XINFO (GROUPS, CONSUMERS, STREAM FULL); XREADGROUP, XCLAIM and XAUTOCLAIM in
`stream_group_read`; the records in `stream_group_store`.

Replies and errors follow Redis 7.0.15's `t_stream.c` byte for byte, including its
argument-checking order (which error wins when several apply). Delivery and seen times are
the command's `now_ms`; idle times are `now_ms` minus them, never negative.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    OK,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    Reply,
    SimpleString,
)
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.spec import SYNTAX, Ctx, arity_error, text_of
from cairn.store.commands.stream_group_store import (
    INVALID_READ,
    Group,
    Pending,
    consumer_pending_ids,
    consumers,
    count_groups,
    delete_consumer,
    destroy_group,
    drop_pending,
    get_consumer,
    get_group,
    get_pending,
    group_pending,
    groups,
    last_pending,
    put_consumer,
    put_group,
)
from cairn.store.commands.stream_group_store import Consumer as ConsumerRecord
from cairn.store.commands.stream_ids import (
    MIN_ID,
    StreamId,
    interval_end,
    interval_start,
    parse_id,
    strict_id,
)
from cairn.store.commands.stream_store import Stream, StreamState, lookup_stream, save
from cairn.store.db import Db
from cairn.store.notifications import STREAM

_BUSYGROUP = ErrorReply("BUSYGROUP Consumer Group name already exists")
_NEEDS_KEY = ErrorReply(
    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
    "to use the MKSTREAM option to create an empty stream automatically."
)
_ENTRIES_READ = ErrorReply("ERR value for ENTRIESREAD must be positive or -1")


def c_text(data: bytes) -> str:
    """User bytes as Redis prints them with `%s`: up to the first NUL byte."""
    return text_of(data.partition(b"\0")[0])


def nogroup_for_key(key: bytes, group: bytes) -> ErrorReply:
    """XGROUP's and XINFO's NOGROUP error."""
    return ErrorReply(
        f"NOGROUP No such consumer group '{c_text(group)}' for key name '{c_text(key)}'"
    )


def nogroup(key: bytes, group: bytes, suffix: str = "") -> ErrorReply:
    """XPENDING's, XCLAIM's and XAUTOCLAIM's NOGROUP error (XREADGROUP adds a suffix)."""
    return ErrorReply(
        f"NOGROUP No such key '{c_text(key)}' or consumer group '{c_text(group)}'{suffix}"
    )


def subcommand_syntax(command: str, sub: bytes) -> ErrorReply:
    """Redis's `addReplySubcommandSyntaxError`."""
    return ErrorReply(
        f"ERR unknown subcommand or wrong number of arguments for '{c_text(sub)[:128]}'. "
        f"Try {command} HELP."
    )


def help_reply(command: str, lines: tuple[str, ...]) -> Array:
    """Redis's `addReplyHelp`: a heading, the lines, then HELP's own."""
    head = f"{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    body = (head, *lines, "HELP", "    Prints this help.")
    return Array(tuple(SimpleString(line) for line in body))


def idle(now_ms: int, since_ms: int) -> int:
    """Milliseconds since `since_ms`, never negative."""
    return max(0, now_ms - since_ms)


# -- lag ------------------------------------------------------------------------------


def _has_tombstones(state: StreamState, start: StreamId) -> bool:
    """Whether a deleted entry may lie at or after `start` (`streamRangeHasTombstones`)."""
    if not state.length or state.max_deleted == MIN_ID:
        return False
    if state.first_id > state.max_deleted:
        return False
    return start <= state.max_deleted


def estimate_read(state: StreamState, entry_id: StreamId) -> int:
    """How many entries were added up to `entry_id`, when it can be known
    (`streamEstimateDistanceFromFirstEverEntry`); INVALID_READ otherwise."""
    if not state.entries_added:
        return 0
    if not state.length and entry_id <= state.last_id:
        return state.entries_added
    if entry_id == state.last_id:
        return state.entries_added
    if entry_id > state.last_id:
        return INVALID_READ
    if state.max_deleted == MIN_ID or state.max_deleted < state.first_id:
        if entry_id < state.first_id:
            return state.entries_added - state.length
        if entry_id == state.first_id:
            return state.entries_added - state.length + 1
    return INVALID_READ


def read_after(state: StreamState, group: Group, entry_id: StreamId) -> int:
    """The group's entries-read counter once it delivered `entry_id` past its last id."""
    if group.entries_read != INVALID_READ and not _has_tombstones(state, entry_id):
        return group.entries_read + 1
    if state.entries_added:
        return estimate_read(state, entry_id)
    return group.entries_read


def lag_reply(state: StreamState, group: Group) -> Reply:
    """The group's lag, or null when it cannot be known (`streamReplyWithCGLag`)."""
    if not state.entries_added:
        return Integer(0)
    if group.entries_read != INVALID_READ and not _has_tombstones(state, group.last_id):
        return Integer(state.entries_added - group.entries_read)
    read = estimate_read(state, group.last_id)
    return NULL if read == INVALID_READ else Integer(state.entries_added - read)


def _entries_read_reply(group: Group) -> Reply:
    return NULL if group.entries_read == INVALID_READ else Integer(group.entries_read)


# -- XGROUP ---------------------------------------------------------------------------

_XGROUP_ARITY = {
    b"create": -5,
    b"setid": -5,
    b"destroy": 4,
    b"createconsumer": 5,
    b"delconsumer": 5,
    b"help": 2,
}
"""Each subcommand's arity counted with XGROUP (negative: at least), as Redis's table."""

_XGROUP_HELP = (
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
)


def _check_xgroup_arity(args: Sequence[bytes]) -> bytes:
    """The lowercased subcommand once its arity is right (Redis checks it first)."""
    sub = args[0].lower()
    arity = _XGROUP_ARITY.get(sub)
    if arity is None:
        name = c_text(args[0])[:128]
        raise fail(ErrorReply(f"ERR unknown subcommand '{name}'. Try XGROUP HELP."))
    argc = len(args) + 1
    if argc != arity and not (arity < 0 and argc >= -arity):
        raise fail(arity_error(f"xgroup|{sub.decode()}"))
    return sub


def _xgroup_options(args: Sequence[bytes], sub: bytes) -> tuple[bool, int]:
    """(MKSTREAM, ENTRIESREAD) of CREATE and SETID (options from argv[5])."""
    mkstream, entries_read = False, INVALID_READ
    i = 4
    while i < len(args):
        option = args[i].lower()
        if sub == b"create" and option == b"mkstream":
            mkstream = True
            i += 1
        elif sub in (b"create", b"setid") and option == b"entriesread" and i + 1 < len(args):
            entries_read = int_arg(args[i + 1])
            if entries_read < 0 and entries_read != INVALID_READ:
                raise fail(_ENTRIES_READ)
            i += 2
        else:
            raise fail(subcommand_syntax("XGROUP", args[0]))
    return mkstream, entries_read


def cmd_xgroup(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP."""
    sub = _check_xgroup_arity(args)
    if sub == b"help":
        return help_reply("XGROUP", _XGROUP_HELP)
    mkstream, entries_read = _xgroup_options(args, sub)
    key, name = args[1], args[2]
    stream = lookup_stream(ctx.db, key)
    group = None
    if not mkstream:
        if stream is None:
            raise fail(_NEEDS_KEY)
        group = get_group(ctx.db, key, name)
        if group is None and sub in (b"setid", b"createconsumer", b"delconsumer"):
            raise fail(nogroup_for_key(key, name))
    if sub == b"create":
        if len(args) > 7:
            raise fail(subcommand_syntax("XGROUP", args[0]))
        return _create(ctx, stream, key, name, args[3], entries_read)
    if sub == b"setid":
        if len(args) not in (4, 6):
            raise fail(subcommand_syntax("XGROUP", args[0]))
        assert stream is not None and group is not None
        return _setid(ctx, stream, group, args[3], entries_read)
    if sub == b"destroy":
        assert stream is not None
        if group is None:
            return Integer(0)
        destroy_group(ctx.db, key, group)
        count_groups(ctx.db, stream, -1)
        ctx.notify(STREAM, "xgroup-destroy", key)
        return Integer(1)
    assert group is not None
    if sub == b"createconsumer":
        return Integer(1 if create_consumer(ctx, key, group, args[3]) else 0)
    return _delconsumer(ctx, key, group, args[3])


def _create(
    ctx: Ctx, stream: Stream | None, key: bytes, name: bytes, raw_id: bytes, read: int
) -> Reply:
    if raw_id == b"$":
        last = MIN_ID if stream is None else stream.state.last_id
    else:
        last = strict_id(raw_id)
    if stream is None:
        stream = save(ctx.db, key, None, StreamState())
    if get_group(ctx.db, key, name) is not None:
        raise fail(_BUSYGROUP)
    put_group(ctx.db, key, Group(name, last, read))
    count_groups(ctx.db, stream, 1)
    ctx.notify(STREAM, "xgroup-create", key)
    return OK


def _setid(ctx: Ctx, stream: Stream, group: Group, raw_id: bytes, read: int) -> Reply:
    last = stream.state.last_id if raw_id == b"$" else parse_id(raw_id)[0]
    put_group(ctx.db, stream.key, replace(group, last_id=last, entries_read=read))
    ctx.notify(STREAM, "xgroup-setid", stream.key)
    return OK


def create_consumer(ctx: Ctx, key: bytes, group: Group, name: bytes) -> Group | None:
    """Create consumer `name` (seen now); the group with its count updated and stored, or
    None if the consumer existed."""
    if get_consumer(ctx.db, key, group.name, name) is not None:
        return None
    put_consumer(ctx.db, key, group.name, ConsumerRecord(name, ctx.now_ms))
    updated = replace(group, consumers=group.consumers + 1)
    put_group(ctx.db, key, updated)
    ctx.notify(STREAM, "xgroup-createconsumer", key)
    return updated


def _delconsumer(ctx: Ctx, key: bytes, group: Group, name: bytes) -> Reply:
    db = ctx.db
    consumer = get_consumer(db, key, group.name, name)
    if consumer is None:
        return Integer(0)
    put_group(db, key, delete_consumer(db, key, group, consumer))
    ctx.notify(STREAM, "xgroup-delconsumer", key)
    return Integer(consumer.pending)


# -- XACK -----------------------------------------------------------------------------


def cmd_xack(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XACK key group id [id ...]: how many of the ids were pending (now acknowledged)."""
    key = args[0]
    stream = lookup_stream(ctx.db, key)
    group = None if stream is None else get_group(ctx.db, key, args[1])
    if group is None:
        return Integer(0)
    ids = [strict_id(data) for data in args[2:]]
    acked = 0
    owners: dict[bytes, int] = {}
    for entry_id in ids:
        entry = get_pending(ctx.db, key, group.name, entry_id)
        if entry is None:
            continue
        drop_pending(ctx.db, key, group.name, entry)
        owners[entry.consumer] = owners.get(entry.consumer, 0) + 1
        acked += 1
    if acked:
        adjust_owners(ctx.db, key, group.name, owners)
        put_group(ctx.db, key, replace(group, pending=group.pending - acked))
    return Integer(acked)


def adjust_owners(db: Db, key: bytes, group: bytes, deltas: dict[bytes, int]) -> None:
    """Subtract `deltas` from the named consumers' pending counts."""
    for name, delta in deltas.items():
        consumer = get_consumer(db, key, group, name)
        assert consumer is not None
        put_consumer(db, key, group, replace(consumer, pending=consumer.pending - delta))


# -- XPENDING -------------------------------------------------------------------------


def cmd_xpending(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XPENDING key group [[IDLE min-idle] start end count [consumer]]."""
    argc = len(args) + 1
    if argc != 3 and not 6 <= argc <= 9:
        raise fail(SYNTAX)
    min_idle, at = 0, 2
    extended = None
    if argc >= 6:
        if args[2].lower() == b"idle":
            min_idle = int_arg(args[3])
            if argc < 8:
                raise fail(SYNTAX)
            at = 4
        count = max(0, int_arg(args[at + 2]))
        start, end = interval_start(args[at]), interval_end(args[at + 1])
        who = args[at + 3] if at + 3 < len(args) else None
        extended = (start, end, count, who)
    stream = lookup_stream(ctx.db, args[0])
    group = None if stream is None else get_group(ctx.db, args[0], args[1])
    if group is None:
        raise fail(nogroup(args[0], args[1]))
    if extended is None:
        return _pending_summary(ctx.db, args[0], group)
    start, end, count, who = extended
    return _pending_range(ctx, args[0], group, start, end, count, who, min_idle)


def _pending_summary(db: Db, key: bytes, group: Group) -> Reply:
    if not group.pending:
        return Array((Integer(0), NULL, NULL, NULL_ARRAY))
    first = next(group_pending(db, key, group.name, MIN_ID))
    last = last_pending(db, key, group.name)
    assert last is not None
    owners = tuple(
        Array((Bulk(c.name), Bulk(b"%d" % c.pending)))
        for c in consumers(db, key, group.name)
        if c.pending
    )
    return Array((Integer(group.pending), Bulk(first.id.text()), Bulk(last.text()), Array(owners)))


def _pending_range(
    ctx: Ctx,
    key: bytes,
    group: Group,
    start: StreamId,
    end: StreamId,
    count: int,
    who: bytes | None,
    min_idle: int,
) -> Reply:
    if who is not None and get_consumer(ctx.db, key, group.name, who) is None:
        return Array(())
    rows: list[Reply] = []
    if not count or start > end:
        return Array(())
    for entry in _pel(ctx.db, key, group.name, who, start, end):
        if min_idle and ctx.now_ms - entry.delivery_ms < min_idle:
            continue
        rows.append(
            Array(
                (
                    Bulk(entry.id.text()),
                    Bulk(entry.consumer),
                    Integer(idle(ctx.now_ms, entry.delivery_ms)),
                    Integer(entry.deliveries),
                )
            )
        )
        if len(rows) == count:
            break
    return Array(tuple(rows))


def _pel(
    db: Db, key: bytes, group: bytes, who: bytes | None, start: StreamId, end: StreamId
) -> Iterator[Pending]:
    """The pending entries from `start` to `end`: the group's, or only `who`'s."""
    if who is None:
        return group_pending(db, key, group, start, end)
    return (
        entry
        for entry_id in consumer_pending_ids(db, key, group, who, start, end)
        if (entry := get_pending(db, key, group, entry_id)) is not None
    )


# -- XINFO GROUPS / CONSUMERS / STREAM FULL -------------------------------------------


def xinfo_groups(stream: Stream, db: Db) -> Reply:
    """XINFO GROUPS key: each group's name, consumers, pending, last id, reads and lag."""
    rows = []
    for group in groups(db, stream.key):
        rows.append(
            Map(
                (
                    (Bulk(b"name"), Bulk(group.name)),
                    (Bulk(b"consumers"), Integer(group.consumers)),
                    (Bulk(b"pending"), Integer(group.pending)),
                    (Bulk(b"last-delivered-id"), Bulk(group.last_id.text())),
                    (Bulk(b"entries-read"), _entries_read_reply(group)),
                    (Bulk(b"lag"), lag_reply(stream.state, group)),
                )
            )
        )
    return Array(tuple(rows))


def xinfo_consumers(ctx: Ctx, stream: Stream, name: bytes) -> Reply:
    """XINFO CONSUMERS key group: each consumer's name, pending count and idle time."""
    group = get_group(ctx.db, stream.key, name)
    if group is None:
        raise fail(nogroup_for_key(stream.key, name))
    rows = []
    for consumer in consumers(ctx.db, stream.key, name):
        rows.append(
            Map(
                (
                    (Bulk(b"name"), Bulk(consumer.name)),
                    (Bulk(b"pending"), Integer(consumer.pending)),
                    (Bulk(b"idle"), Integer(idle(ctx.now_ms, consumer.seen_ms))),
                )
            )
        )
    return Array(tuple(rows))


def _limited(items: Iterator[Pending], count: int) -> Iterator[Pending]:
    for seen, item in enumerate(items):
        if count and seen >= count:
            return
        yield item


def xinfo_full_groups(stream: Stream, db: Db, count: int) -> Reply:
    """XINFO STREAM key FULL's groups: each with its PEL and consumers (PELs listed up to
    `count` entries, 0: all), delivery and seen times absolute, as Redis 7.0 shows them."""
    rows = []
    for group in groups(db, stream.key):
        pel = tuple(
            Array(
                (
                    Bulk(entry.id.text()),
                    Bulk(entry.consumer),
                    Integer(entry.delivery_ms),
                    Integer(entry.deliveries),
                )
            )
            for entry in _limited(group_pending(db, stream.key, group.name, MIN_ID), count)
        )
        members = tuple(
            _full_consumer(db, stream.key, group.name, consumer, count)
            for consumer in consumers(db, stream.key, group.name)
        )
        rows.append(
            Map(
                (
                    (Bulk(b"name"), Bulk(group.name)),
                    (Bulk(b"last-delivered-id"), Bulk(group.last_id.text())),
                    (Bulk(b"entries-read"), _entries_read_reply(group)),
                    (Bulk(b"lag"), lag_reply(stream.state, group)),
                    (Bulk(b"pel-count"), Integer(group.pending)),
                    (Bulk(b"pending"), Array(pel)),
                    (Bulk(b"consumers"), Array(members)),
                )
            )
        )
    return Array(tuple(rows))


def _full_consumer(db: Db, key: bytes, group: bytes, consumer: ConsumerRecord, count: int) -> Reply:
    ids = consumer_pending_ids(db, key, group, consumer.name, MIN_ID, None)
    pel: list[Reply] = []
    for entry_id in ids:
        if count and len(pel) >= count:
            break
        entry = get_pending(db, key, group, entry_id)
        assert entry is not None
        pel.append(
            Array((Bulk(entry_id.text()), Integer(entry.delivery_ms), Integer(entry.deliveries)))
        )
    return Map(
        (
            (Bulk(b"name"), Bulk(consumer.name)),
            (Bulk(b"seen-time"), Integer(consumer.seen_ms)),
            (Bulk(b"pel-count"), Integer(consumer.pending)),
            (Bulk(b"pending"), Array(tuple(pel))),
        )
    )
