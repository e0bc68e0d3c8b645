"""Delivering and claiming stream entries through consumer groups (Redis 7.0): XREADGROUP
(with BLOCK), XCLAIM and XAUTOCLAIM. All three move pending entries, so all three are
writes; each touched entry costs a constant number of point reads and writes.

XREADGROUP `>` delivers the entries after the group's last delivered id, advancing it and
(unless NOACK) adding each to the group's and the consumer's PEL; an explicit id re-reads
the consumer's own pending entries after it (a pending entry whose stream entry was deleted
shows as `[id, nil]`). BLOCK is served like XREAD BLOCK (`cairn.store.commands.blocking`):
with nothing to deliver the command returns `Blocked` and is attempted again, with the
same arguments (`>` means "after the group's last id" at every attempt, as in Redis) and
COUNT defaulting to 1000 as Redis serves an unblocked client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cairn.resp.reply import NULL_ARRAY, Array, Bulk, ErrorReply, NestedMap, Reply
from cairn.store.commands.blocking import blocked, parse_ms_timeout
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import SYNTAX, Ctx
from cairn.store.commands.stream_group_store import (
    Consumer,
    Group,
    Pending,
    consumer_pending_ids,
    drop_pending,
    get_consumer,
    get_group,
    get_pending,
    group_pending,
    next_delivery,
    put_consumer,
    put_group,
    put_pending,
)
from cairn.store.commands.stream_groups import c_text, nogroup, read_after
from cairn.store.commands.stream_ids import MAX_ID, StreamId, interval_start, strict_id
from cairn.store.commands.stream_read import BLOCKED_COUNT, entries_reply, entry_reply
from cairn.store.commands.stream_store import (
    Stream,
    entries,
    get_entry,
    last_entry_id,
    lookup_stream,
)
from cairn.store.notifications import STREAM
from cairn.store.numbers import format_int

_UNBALANCED = ErrorReply(
    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
)
_MISSING_GROUP = ErrorReply("ERR Missing GROUP option for XREADGROUP")
_DOLLAR = ErrorReply(
    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history "
    "of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ "
    "ID would just return an empty result set."
)
_READGROUP_SUFFIX = " in XREADGROUP with GROUP option"
_AUTOCLAIM_COUNT = ErrorReply("ERR COUNT must be > 0")
AUTOCLAIM_MAX_COUNT = (2**63 - 1) // 16
"""XAUTOCLAIM's largest COUNT (Redis's LONG_MAX / sizeof(streamID))."""
_ATTEMPTS_FACTOR = 10


@dataclass
class GroupWriter:
    """One command's changes to a group: pending entries moved, added and removed, with
    the group's and consumers' counters kept in step and written once by `finish`."""

    ctx: Ctx
    key: bytes
    group: Group
    owners: dict[bytes, int] = field(default_factory=dict)

    def seen(self, name: bytes) -> None:
        """Consumer `name` was seen now (created if missing), as `streamLookupConsumer`
        and `streamCreateConsumer` do."""
        consumer = get_consumer(self.ctx.db, self.key, self.group.name, name)
        if consumer is None:
            consumer = Consumer(name, self.ctx.now_ms)
            self.group = replace(self.group, consumers=self.group.consumers + 1)
            self.ctx.notify(STREAM, "xgroup-createconsumer", self.key)
        put_consumer(
            self.ctx.db, self.key, self.group.name, replace(consumer, seen_ms=self.ctx.now_ms)
        )

    def assign(self, old: Pending | None, new: Pending) -> None:
        """Make `new` the pending entry of its id (replacing `old`, its current one)."""
        if old is None:
            self.group = replace(self.group, pending=self.group.pending + 1)
        else:
            self.remove(old, count=False)
        put_pending(self.ctx.db, self.key, self.group.name, new)
        self.owners[new.consumer] = self.owners.get(new.consumer, 0) + 1

    def remove(self, entry: Pending, count: bool = True) -> None:
        """Drop a pending entry (`count`: from the group's size too)."""
        drop_pending(self.ctx.db, self.key, self.group.name, entry)
        self.owners[entry.consumer] = self.owners.get(entry.consumer, 0) - 1
        if count:
            self.group = replace(self.group, pending=self.group.pending - 1)

    def finish(self, original: Group | None = None) -> None:
        """Write the consumers' pending counts and the group (not when nothing changed
        since `original`)."""
        if self.group == original and not self.owners:
            return
        db, name = self.ctx.db, self.group.name
        for owner, delta in self.owners.items():
            if delta:
                consumer = get_consumer(db, self.key, name, owner)
                assert consumer is not None
                put_consumer(
                    db, self.key, name, replace(consumer, pending=consumer.pending + delta)
                )
        put_group(db, self.key, self.group)


def _entry_fields(ctx: Ctx, stream: Stream, entry_id: StreamId) -> Reply | None:
    """Entry `entry_id` as a reply, None if it is not in the stream."""
    entry = get_entry(ctx.db, stream.key, stream.state, entry_id)
    return None if entry is None else entry_reply(entry)


# -- XREADGROUP -----------------------------------------------------------------------


@dataclass
class _ReadArgs:
    timeout: int | None = None
    count: int = 0
    noack: bool = False
    group: bytes | None = None
    consumer: bytes = b""
    first: int = 0


def _read_options(args: Sequence[bytes]) -> _ReadArgs:
    opts = _ReadArgs()
    i = 0
    while i < len(args):
        option, more = args[i].lower(), len(args) - i - 1
        if option == b"block" and more:
            opts.timeout = parse_ms_timeout(args[i + 1])
            i += 2
        elif option == b"count" and more:
            opts.count = max(0, int_arg(args[i + 1]))
            i += 2
        elif option == b"streams" and more:
            if more % 2:
                raise fail(_UNBALANCED)
            opts.first = i + 1
            break
        elif option == b"group" and more >= 2:
            opts.group, opts.consumer = args[i + 1], args[i + 2]
            i += 3
        elif option == b"noack":
            opts.noack = True
            i += 1
        else:
            raise fail(SYNTAX)
    if not opts.first:
        raise fail(SYNTAX)
    if opts.group is None:
        raise fail(_MISSING_GROUP)
    return opts


def _read_ids(
    ctx: Ctx, group: bytes, keys: Sequence[bytes], raw: Sequence[bytes]
) -> list[StreamId]:
    """Each stream's id (MAX_ID stands for `>`), checking keys and groups in order."""
    ids = []
    for key, data in zip(keys, raw, strict=True):
        stream = lookup_stream(ctx.db, key)
        if stream is None or get_group(ctx.db, key, group) is None:
            raise fail(nogroup(key, group, _READGROUP_SUFFIX))
        if data == b"$":
            raise fail(_DOLLAR)
        ids.append(MAX_ID if data == b">" else strict_id(data))
    return ids


def cmd_xreadgroup(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ..."""
    opts = _read_options(args)
    assert opts.group is not None
    half = (len(args) - opts.first) // 2
    keys = args[opts.first : opts.first + half]
    ids = _read_ids(ctx, opts.group, keys, args[opts.first + half :])
    served: list[tuple[Reply, Reply]] = []
    for key, after in zip(keys, ids, strict=True):
        reply = _serve(ctx, key, after, opts)
        if reply is not None:
            served.append((Bulk(key), reply))
    if served:
        return NestedMap(tuple(served))
    if opts.timeout is None:
        return NULL_ARRAY
    retry = (
        b"BLOCK",
        format_int(opts.timeout),
        b"COUNT",
        format_int(opts.count or BLOCKED_COUNT),
        *((b"NOACK",) if opts.noack else ()),
        b"GROUP",
        opts.group,
        opts.consumer,
        b"STREAMS",
        *args[opts.first :],
    )
    raise fail(blocked(tuple(dict.fromkeys(keys)), opts.timeout, retry))


def _serve(ctx: Ctx, key: bytes, after: StreamId, opts: _ReadArgs) -> Reply | None:
    """One stream's part of the reply, None when there is nothing to serve now."""
    assert opts.group is not None
    stream = lookup_stream(ctx.db, key)
    group = get_group(ctx.db, key, opts.group)
    assert stream is not None and group is not None
    writer = GroupWriter(ctx, key, group)
    if after != MAX_ID:
        writer.seen(opts.consumer)
        reply = _history(writer, stream, after, opts)
    else:
        last = last_entry_id(ctx.db, key, stream.state)
        if last is None or last <= group.last_id:
            return None
        writer.seen(opts.consumer)
        reply = _deliver(writer, stream, opts)
    writer.finish()
    return reply


def _history(writer: GroupWriter, stream: Stream, after: StreamId, opts: _ReadArgs) -> Reply:
    """The consumer's pending entries after `after`, each delivered again."""
    ctx, key, name = writer.ctx, writer.key, writer.group.name
    start = after.next()
    assert start is not None
    rows: list[Reply] = []
    for entry_id in consumer_pending_ids(ctx.db, key, name, opts.consumer, start, None):
        if opts.count and len(rows) >= opts.count:
            break
        reply = _entry_fields(ctx, stream, entry_id)
        if reply is None:
            rows.append(Array((Bulk(entry_id.text()), NULL_ARRAY)))
            continue
        rows.append(reply)
        entry = get_pending(ctx.db, key, name, entry_id)
        assert entry is not None
        again = replace(entry, delivery_ms=ctx.now_ms, deliveries=next_delivery(entry.deliveries))
        put_pending(ctx.db, key, name, again)
    return Array(tuple(rows))


def _deliver(writer: GroupWriter, stream: Stream, opts: _ReadArgs) -> Reply:
    """New entries after the group's last id: the group advances, the PEL grows."""
    ctx, key = writer.ctx, writer.key
    start = writer.group.last_id.next()
    assert start is not None
    rows = entries(ctx.db, key, stream.state, start, MAX_ID, opts.count or None)
    for entry_id, _ in rows:
        read = read_after(stream.state, writer.group, entry_id)
        writer.group = replace(writer.group, last_id=entry_id, entries_read=read)
        if opts.noack:
            continue
        old = get_pending(ctx.db, key, writer.group.name, entry_id)
        writer.assign(old, Pending(entry_id, opts.consumer, ctx.now_ms, 1))
    return entries_reply(rows)


def xreadgroup_keys(argv: Sequence[bytes]) -> list[bytes]:
    """XREADGROUP's keys: the first half of the arguments after STREAMS (GROUP's two
    names skipped, so a group called "streams" is no trap)."""
    i = 1
    while i < len(argv):
        option = argv[i].lower()
        if option == b"streams":
            rest = argv[i + 1 :]
            return list(rest[: len(rest) // 2])
        i += 3 if option == b"group" else 2 if option in (b"block", b"count") else 1
    return []


# -- XCLAIM ---------------------------------------------------------------------------


@dataclass
class _ClaimArgs:
    ids: list[StreamId]
    delivery: int | None = None
    retries: int = -1
    force: bool = False
    justid: bool = False
    last_id: StreamId | None = None


def _claim_int(data: bytes, what: str) -> int:
    try:
        return int_arg(data)
    except CommandError:
        raise fail(ErrorReply(f"ERR Invalid {what} argument for XCLAIM")) from None


def _claim_options(ctx: Ctx, args: Sequence[bytes]) -> _ClaimArgs:
    """XCLAIM's ids (until the first argument that is not one) and options."""
    ids: list[StreamId] = []
    j = 4
    while j < len(args):
        try:
            ids.append(strict_id(args[j]))
        except CommandError:
            break
        j += 1
    opts = _ClaimArgs(ids)
    while j < len(args):
        option, more = args[j].lower(), len(args) - 1 - j
        if option == b"force":
            opts.force = True
        elif option == b"justid":
            opts.justid = True
        elif option == b"idle" and more:
            j += 1
            opts.delivery = ctx.now_ms - _claim_int(args[j], "IDLE option")
        elif option == b"time" and more:
            j += 1
            opts.delivery = _claim_int(args[j], "TIME option")
        elif option == b"retrycount" and more:
            j += 1
            opts.retries = _claim_int(args[j], "RETRYCOUNT option")
        elif option == b"lastid" and more:
            j += 1
            opts.last_id = strict_id(args[j])
        else:
            raise fail(ErrorReply(f"ERR Unrecognized XCLAIM option '{c_text(args[j])}'"))
        j += 1
    return opts


def _lookup_group(ctx: Ctx, key: bytes, name: bytes) -> tuple[Stream, Group]:
    stream = lookup_stream(ctx.db, key)
    group = None if stream is None else get_group(ctx.db, key, name)
    if stream is None or group is None:
        raise fail(nogroup(key, name))
    return stream, group


def cmd_xclaim(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms-unix-time]
    [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]."""
    key, name = args[0], args[2]
    stream, original = _lookup_group(ctx, key, args[1])
    group = original
    try:
        min_idle = max(0, int_arg(args[3]))
    except CommandError:
        raise fail(ErrorReply("ERR Invalid min-idle-time argument for XCLAIM")) from None
    opts = _claim_options(ctx, args)
    if opts.last_id is not None and opts.last_id > group.last_id:
        group = replace(group, last_id=opts.last_id)
    delivery = ctx.now_ms
    if opts.delivery is not None and 0 <= opts.delivery <= ctx.now_ms:
        delivery = opts.delivery
    writer = GroupWriter(ctx, key, group)
    claimed: list[Reply] = []
    met = False
    for entry_id in opts.ids:
        old = get_pending(ctx.db, key, group.name, entry_id)
        fields = _entry_fields(ctx, stream, entry_id)
        if fields is None:
            if old is not None:
                writer.remove(old)
            continue
        if old is None and not opts.force:
            continue
        if old is not None and min_idle and ctx.now_ms - old.delivery_ms < min_idle:
            continue
        if not met:
            writer.seen(name)
            met = True
        deliveries = 1 if old is None else old.deliveries
        if opts.retries >= 0:
            deliveries = opts.retries
        elif not opts.justid:
            deliveries = next_delivery(deliveries)
        writer.assign(old, Pending(entry_id, name, delivery, deliveries))
        claimed.append(Bulk(entry_id.text()) if opts.justid else fields)
    writer.finish(original)
    return Array(tuple(claimed))


# -- XAUTOCLAIM -----------------------------------------------------------------------


def _autoclaim_options(args: Sequence[bytes]) -> tuple[int, StreamId, int, bool]:
    """(min idle, start, count, JUSTID), checked before the key as Redis does."""
    try:
        min_idle = max(0, int_arg(args[3]))
    except CommandError:
        raise fail(ErrorReply("ERR Invalid min-idle-time argument for XAUTOCLAIM")) from None
    start = interval_start(args[4])
    count, justid = 100, False
    j = 5
    while j < len(args):
        option, more = args[j].lower(), len(args) - 1 - j
        if option == b"count" and more:
            try:
                count = int_arg(args[j + 1])
            except CommandError:
                raise fail(_AUTOCLAIM_COUNT) from None
            if not 1 <= count <= AUTOCLAIM_MAX_COUNT:
                raise fail(_AUTOCLAIM_COUNT)
            j += 1
        elif option == b"justid":
            justid = True
        else:
            raise fail(SYNTAX)
        j += 1
    return min_idle, start, count, justid


def cmd_xautoclaim(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]: claims
    up to COUNT idle pending entries from `start`, looking at most 10 x COUNT of them;
    pending entries whose stream entry was deleted are dropped and listed (they count
    against COUNT). The reply's cursor is the next pending id, 0-0 at the end."""
    min_idle, start, count, justid = _autoclaim_options(args)
    key, name = args[0], args[2]
    stream, group = _lookup_group(ctx, key, args[1])
    writer = GroupWriter(ctx, key, group)
    pel = group_pending(ctx.db, key, group.name, start)
    attempts = count * _ATTEMPTS_FACTOR
    claimed: list[Reply] = []
    deleted: list[Reply] = []
    met, ended = False, False
    while attempts and count:
        attempts -= 1
        entry = next(pel, None)
        if entry is None:
            ended = True
            break
        fields = _entry_fields(ctx, stream, entry.id)
        if fields is None:
            writer.remove(entry)
            deleted.append(Bulk(entry.id.text()))
            count -= 1
            continue
        if min_idle and ctx.now_ms - entry.delivery_ms < min_idle:
            continue
        if not met:
            writer.seen(name)
            met = True
        deliveries = entry.deliveries if justid else next_delivery(entry.deliveries)
        writer.assign(entry, Pending(entry.id, name, ctx.now_ms, deliveries))
        claimed.append(Bulk(entry.id.text()) if justid else fields)
        count -= 1
    following = None if ended else next(pel, None)
    writer.finish(group)
    cursor = b"0-0" if following is None else following.id.text()
    return Array((Bulk(cursor), Array(tuple(claimed)), Array(tuple(deleted))))
