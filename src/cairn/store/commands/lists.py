"""List commands: pushes and pops at either end, reads and writes by index and range,
LTRIM, LREM, LINSERT, LPOS, the moves between lists (LMOVE, RPOPLPUSH, LMPOP) and the
blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP). The record layout and the
record operations are `list_store`'s.

Every argument is checked in Redis 7.0's order (some before the key is looked up, some
after), so that a call with several faults gets Redis' error.

A blocking command parses its timeout with `blocking.parse_timeout` where Redis does, then
serves at once exactly like its non-blocking form when a key has elements. When none has,
it ends with `Blocked` (the keys to wait on and the timeout) raised as the command's error,
so the entry writes nothing, not even the purge of an expired key it met; the node parks
the client and proposes the command again when one of the keys is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, NULL_ARRAY, OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.commands import list_store as store
from cairn.store.commands.blocking import blocked, parse_timeout
from cairn.store.commands.common import bulk_or_null, fail, int_arg
from cairn.store.commands.define import K1, NOKEYS, RF, WD, WDF, WF, R, W, cmd, numkeys_keys
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import (
    NO_SUCH_KEY,
    SYNTAX,
    CommandSpec,
    Ctx,
    Flag,
    arity_error,
)
from cairn.store.layout import Meta
from cairn.store.notifications import GENERIC, LIST
from cairn.store.numbers import LLONG_MIN, parse_ll

_NOT_POSITIVE = ErrorReply("ERR value is out of range, must be positive")
_INDEX_RANGE = ErrorReply("ERR index out of range")
_RANK_ZERO = ErrorReply(
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)
_COUNT_NEGATIVE = ErrorReply("ERR COUNT can't be negative")
_MAXLEN_NEGATIVE = ErrorReply("ERR MAXLEN can't be negative")
_NUMKEYS = ErrorReply("ERR numkeys should be greater than 0")
_COUNT = ErrorReply("ERR count should be greater than 0")


# -- pushes and pops -------------------------------------------------------------------


def _push(ctx: Ctx, args: Sequence[bytes], left: bool, only_existing: bool) -> Reply:
    meta = store.lookup_list(ctx.db, args[0])
    if meta is None and only_existing:
        return Integer(0)
    size = store.push(ctx.db, args[0], meta, args[1:], left)
    ctx.notify(LIST, "lpush" if left else "rpush", args[0])
    return Integer(size)


def _notify_pop(ctx: Ctx, key: bytes, left: bool, emptied: bool) -> None:
    """Redis's events for a pop: lpop or rpop, then del if it emptied the list."""
    ctx.notify(LIST, "lpop" if left else "rpop", key)
    if emptied:
        ctx.notify(GENERIC, "del", key)


def _popped(ctx: Ctx, key: bytes, meta: Meta, count: int, left: bool) -> list[bytes]:
    """`store.pop` with its notifications."""
    values = store.pop(ctx.db, key, meta, count, left)
    _notify_pop(ctx, key, left, len(values) >= meta.size)
    return values


def cmd_lpush(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LPUSH key element [element ...]: each element in turn becomes the head; the length."""
    return _push(ctx, args, left=True, only_existing=False)


def cmd_rpush(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RPUSH key element [element ...]: appended in order; the new length."""
    return _push(ctx, args, left=False, only_existing=False)


def cmd_lpushx(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LPUSHX key element [element ...]: LPUSH only onto an existing list (else 0)."""
    return _push(ctx, args, left=True, only_existing=True)


def cmd_rpushx(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RPUSHX key element [element ...]: RPUSH only onto an existing list (else 0)."""
    return _push(ctx, args, left=False, only_existing=True)


def _pop(ctx: Ctx, args: Sequence[bytes], left: bool) -> Reply:
    """LPOP/RPOP: the count (if any) is checked before the key; without a count the reply
    is one element or nil, with one an array (the null array for a missing key), bounded
    by the list's length however large the count."""
    if len(args) > 2:
        raise fail(arity_error(ctx.name))
    count = None
    if len(args) == 2:
        count = parse_ll(args[1])
        if count is None or count < 0:
            raise fail(_NOT_POSITIVE)
    meta = store.lookup_list(ctx.db, args[0])
    if meta is None:
        return NULL if count is None else NULL_ARRAY
    if count is None:
        return Bulk(_popped(ctx, args[0], meta, 1, left)[0])
    if count == 0:
        return Array(())
    return store.elements(_popped(ctx, args[0], meta, count, left))


def cmd_lpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LPOP key [count]: remove and return the first element(s)."""
    return _pop(ctx, args, left=True)


def cmd_rpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RPOP key [count]: remove and return the last element(s), last first."""
    return _pop(ctx, args, left=False)


# -- reads and writes by index ---------------------------------------------------------


def cmd_llen(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LLEN key: the length (0 for a missing key)."""
    meta = store.lookup_list(ctx.db, args[0])
    return Integer(0 if meta is None else meta.size)


def cmd_lindex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LINDEX key index: one element (negative: from the end), nil out of range. As in
    Redis the key is looked up before the index is parsed (a missing key answers nil)."""
    meta = store.lookup_list(ctx.db, args[0])
    if meta is None:
        return NULL
    index = store.normalize_index(int_arg(args[1]), meta.size)
    return NULL if index is None else bulk_or_null(store.get(ctx.db, args[0], meta, index))


def cmd_lset(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LSET key index element: overwrite one element; `no such key` / `index out of range`
    errors as Redis gives them."""
    meta = store.lookup_list(ctx.db, args[0])
    if meta is None:
        raise fail(NO_SUCH_KEY)
    index = store.normalize_index(int_arg(args[1]), meta.size)
    if index is None:
        raise fail(_INDEX_RANGE)
    ctx.db.put_field(args[0], store.position(meta.head + index), args[2])
    ctx.notify(LIST, "lset", args[0])
    return OK


def cmd_lrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LRANGE key start stop: the elements of an inclusive index range, clamped like Redis
    (one scan of only the records in range, however large the indexes)."""
    start, stop = int_arg(args[1]), int_arg(args[2])
    meta = store.lookup_list(ctx.db, args[0])
    if meta is None:
        return Array(())
    bounds = store.clamp_range(start, stop, meta.size)
    if bounds is None:
        return Array(())
    return store.elements(store.span(ctx.db, args[0], meta, *bounds))


def cmd_ltrim(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LTRIM key start stop: keep only that range (an empty range deletes the key)."""
    start, stop = int_arg(args[1]), int_arg(args[2])
    meta = store.lookup_list(ctx.db, args[0])
    if meta is None:
        return OK
    bounds = store.clamp_range(start, stop, meta.size)
    if bounds is None:
        store.trim(ctx.db, args[0], meta, meta.size, 0)
    else:
        store.trim(ctx.db, args[0], meta, bounds[0], meta.size - bounds[1] - 1)
    ctx.notify(LIST, "ltrim", args[0])
    if bounds is None:
        ctx.notify(GENERIC, "del", args[0])
    return OK


# -- searches --------------------------------------------------------------------------


def cmd_lrem(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LREM key count element: remove the first `count` matches (negative: the last ones;
    0: all); the number removed."""
    key, wanted = args[0], args[2]
    count = int_arg(args[1])
    meta = store.lookup_list(ctx.db, key)
    if meta is None:
        return Integer(0)
    found: list[int] = []
    for index, value in store.walk(ctx.db, key, meta, from_left=count >= 0):
        if value == wanted:
            found.append(index)
            if len(found) == abs(count):
                break
    if found:
        store.remove_at(ctx.db, key, meta, sorted(found))
        ctx.notify(LIST, "lrem", key)
        if len(found) == meta.size:
            ctx.notify(GENERIC, "del", key)
    return Integer(len(found))


def cmd_linsert(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LINSERT key BEFORE|AFTER pivot element: insert next to the first `pivot`; the new
    length, -1 if the pivot is absent, 0 if the key is."""
    key, where, pivot = args[0], args[1].lower(), args[2]
    if where not in (b"before", b"after"):
        raise fail(SYNTAX)
    meta = store.lookup_list(ctx.db, key)
    if meta is None:
        return Integer(0)
    for index, value in store.walk(ctx.db, key, meta, from_left=True):
        if value == pivot:
            at = index if where == b"before" else index + 1
            size = store.insert_at(ctx.db, key, meta, at, args[3])
            ctx.notify(LIST, "linsert", key)
            return Integer(size)
    return Integer(-1)


def _lpos_options(args: Sequence[bytes]) -> tuple[int, int | None, int]:
    """LPOS's (rank, count or None, maxlen), checked in order like Redis."""
    rank, count, maxlen = 1, None, 0
    j = 0
    while j < len(args):
        option, more = args[j].lower(), j + 1 < len(args)
        if option == b"rank" and more:
            rank = int_arg(args[j + 1])
            if rank == 0:
                raise fail(_RANK_ZERO)
        elif option == b"count" and more:
            count = _non_negative(args[j + 1], _COUNT_NEGATIVE)
        elif option == b"maxlen" and more:
            maxlen = _non_negative(args[j + 1], _MAXLEN_NEGATIVE)
        else:
            raise fail(SYNTAX)
        j += 2
    return rank, count, maxlen


def _non_negative(data: bytes, error: ErrorReply) -> int:
    value = parse_ll(data)
    if value is None or value < 0:
        raise fail(error)
    return value


def cmd_lpos(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]: the index of a
    match (nil if none), or with COUNT an array of up to that many (0: all).

    RANK n skips n - 1 matches (negative: searching from the end); MAXLEN n reads at most
    n elements (0: all). Redis negates the rank
    in a C long, so RANK -9223372036854775808 stays negative there: every match counts and
    a COUNT never ends the search; this does the same."""
    key, wanted = args[0], args[1]
    rank, count, maxlen = _lpos_options(args[2:])
    meta = store.lookup_list(ctx.db, key)
    if meta is None:
        return NULL if count is None else Array(())
    wrapped = rank == LLONG_MIN
    skip = 0 if wrapped else abs(rank) - 1
    limit = 0 if wrapped or count is None else count
    found: list[int] = []
    matches = 0
    for index, value in store.walk(ctx.db, key, meta, rank > 0, maxlen):
        if value != wanted:
            continue
        matches += 1
        if matches > skip:
            found.append(index)
            if count is None or (limit and len(found) >= limit):
                break
    if count is None:
        return Integer(found[0]) if found else NULL
    return Array(tuple(Integer(i) for i in found))


def _end(data: bytes) -> bool:
    """LEFT or RIGHT (any case) as "from/to the left"; a syntax error otherwise."""
    side = data.lower()
    if side not in (b"left", b"right"):
        raise fail(SYNTAX)
    return side == b"left"


def _wait(keys: Sequence[bytes], timeout_ms: int) -> CommandError:
    """The outcome of a blocking command with nothing to serve (see the module docstring):
    its keys in order, a repeated one once (Redis also waits on each key once)."""
    return fail(blocked(tuple(dict.fromkeys(keys)), timeout_ms))


# -- moves between lists ---------------------------------------------------------------


def _move(ctx: Ctx, source: bytes, destination: bytes, from_left: bool, to_left: bool) -> Reply:
    """Pop one element from `source` and push it onto `destination` (the same key rotates
    it); the element, nil if `source` is missing. Both types are checked before anything
    is written, as Redis does."""
    meta = store.lookup_list(ctx.db, source)
    if meta is None:
        return NULL
    target = store.lookup_list(ctx.db, destination)
    if destination == source:
        ctx.db.rewriting(source)  # a rotation: the list is never gone
    value = store.pop(ctx.db, source, meta, 1, from_left)[0]
    if destination == source:
        target = store.lookup_list(ctx.db, destination)
    store.push(ctx.db, destination, target, [value], to_left)
    ctx.notify(LIST, "lpush" if to_left else "rpush", destination)
    _notify_pop(ctx, source, from_left, meta.size == 1 and destination != source)
    return Bulk(value)


def cmd_lmove(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LMOVE source destination LEFT|RIGHT LEFT|RIGHT."""
    from_left, to_left = _end(args[2]), _end(args[3])
    return _move(ctx, args[0], args[1], from_left, to_left)


def cmd_rpoplpush(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RPOPLPUSH source destination: LMOVE source destination RIGHT LEFT."""
    return _move(ctx, args[0], args[1], from_left=False, to_left=True)


def _blocking_move(
    ctx: Ctx, args: Sequence[bytes], from_left: bool, to_left: bool, timeout_ms: int
) -> Reply:
    """BLMOVE/BRPOPLPUSH once the arguments are parsed: Redis waits on the source alone,
    without looking at the destination, when the source is missing."""
    if store.lookup_list(ctx.db, args[0]) is None:
        raise _wait(args[:1], timeout_ms)
    return _move(ctx, args[0], args[1], from_left, to_left)


def cmd_blmove(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout."""
    from_left, to_left = _end(args[2]), _end(args[3])
    return _blocking_move(ctx, args, from_left, to_left, parse_timeout(args[4]))


def cmd_brpoplpush(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BRPOPLPUSH source destination timeout."""
    timeout_ms = parse_timeout(args[2])
    return _blocking_move(ctx, args, from_left=False, to_left=True, timeout_ms=timeout_ms)


# -- pops from the first non-empty key -------------------------------------------------


def _first_list(ctx: Ctx, keys: Sequence[bytes]) -> tuple[bytes, Meta] | None:
    """The first of `keys` holding a list, with its metadata (missing ones skipped;
    WRONGTYPE stops the search as soon as it is met, as in Redis)."""
    for key in keys:
        meta = store.lookup_list(ctx.db, key)
        if meta is not None:
            return key, meta
    return None


def _bpop(ctx: Ctx, args: Sequence[bytes], left: bool) -> Reply:
    """BLPOP/BRPOP key [key ...] timeout: [key, element] from the first non-empty key."""
    timeout_ms = parse_timeout(args[-1])
    keys = args[:-1]
    found = _first_list(ctx, keys)
    if found is None:
        raise _wait(keys, timeout_ms)
    key, meta = found
    return Array((Bulk(key), Bulk(_popped(ctx, key, meta, 1, left)[0])))


def cmd_blpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BLPOP key [key ...] timeout."""
    return _bpop(ctx, args, left=True)


def cmd_brpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BRPOP key [key ...] timeout."""
    return _bpop(ctx, args, left=False)


def _mpop_args(args: Sequence[bytes]) -> tuple[Sequence[bytes], bool, int]:
    """(keys, from the left, count) of `numkeys key [key ...] LEFT|RIGHT [COUNT count]`,
    checked in Redis' order; `numkeys` is bounded by the arguments actually given before
    anything is sliced."""
    numkeys = parse_ll(args[0])
    if numkeys is None or numkeys < 1:
        raise fail(_NUMKEYS)
    if numkeys + 1 >= len(args):
        raise fail(SYNTAX)
    keys, left = args[1 : numkeys + 1], _end(args[numkeys + 1])
    count = None
    rest = args[numkeys + 2 :]
    j = 0
    while j < len(rest):
        if count is None and rest[j].lower() == b"count" and j + 1 < len(rest):
            count = parse_ll(rest[j + 1])
            if count is None or count < 1:
                raise fail(_COUNT)
            j += 2
        else:
            raise fail(SYNTAX)
    return keys, left, 1 if count is None else count


def _mpop(ctx: Ctx, found: tuple[bytes, Meta], count: int, left: bool) -> Reply:
    """[key, [elements]]: up to `count` elements popped from the list found."""
    key, meta = found
    return Array((Bulk(key), store.elements(_popped(ctx, key, meta, count, left))))


def cmd_lmpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: [key, [elements]] from the
    first non-empty key, the null array if none."""
    keys, left, count = _mpop_args(args)
    found = _first_list(ctx, keys)
    if found is None:
        return NULL_ARRAY
    return _mpop(ctx, found, count, left)


def cmd_blmpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count] (the timeout is
    parsed after the rest, as Redis does)."""
    keys, left, count = _mpop_args(args[1:])
    timeout_ms = parse_timeout(args[0])
    found = _first_list(ctx, keys)
    if found is None:
        raise _wait(keys, timeout_ms)
    return _mpop(ctx, found, count, left)


_WRF = "@write @list @fast"
_WRS = "@write @list @slow"
_RDS = "@read @list @slow"
_ONE_PER_ELEMENT = "O(1) per element given"


def _doc(since: str, summary: str, complexity: str = "O(1)") -> tuple[str, str, str, str]:
    return ("list", since, complexity, summary)


_KEY_COMMANDS = (
    cmd(
        "lpush",
        -3,
        WDF,
        K1,
        _doc("1.0.0", "Prepend elements to a list.", _ONE_PER_ELEMENT),
        _WRF,
        cmd_lpush,
    ),
    cmd(
        "rpush",
        -3,
        WDF,
        K1,
        _doc("1.0.0", "Append elements to a list.", _ONE_PER_ELEMENT),
        _WRF,
        cmd_rpush,
    ),
    cmd(
        "lpushx",
        -3,
        WDF,
        K1,
        _doc("2.2.0", "Prepend elements to an existing list.", _ONE_PER_ELEMENT),
        _WRF,
        cmd_lpushx,
    ),
    cmd(
        "rpushx",
        -3,
        WDF,
        K1,
        _doc("2.2.0", "Append elements to an existing list.", _ONE_PER_ELEMENT),
        _WRF,
        cmd_rpushx,
    ),
    cmd(
        "lpop",
        -2,
        WF,
        K1,
        _doc("1.0.0", "Remove and return the first elements.", "O(N) in the elements popped"),
        _WRF,
        cmd_lpop,
    ),
    cmd(
        "rpop",
        -2,
        WF,
        K1,
        _doc("1.0.0", "Remove and return the last elements.", "O(N) in the elements popped"),
        _WRF,
        cmd_rpop,
    ),
    cmd("llen", 2, RF, K1, _doc("1.0.0", "The length of a list."), "@read @list @fast", cmd_llen),
    cmd("lindex", 3, R, K1, _doc("1.0.0", "One element by its index."), _RDS, cmd_lindex),
    cmd("lset", 4, WD, K1, _doc("1.0.0", "Overwrite one element by its index."), _WRS, cmd_lset),
    cmd(
        "lrange",
        4,
        R,
        K1,
        _doc("1.0.0", "A range of elements by index.", "O(N) in the elements returned"),
        _RDS,
        cmd_lrange,
    ),
    cmd(
        "ltrim",
        4,
        W,
        K1,
        _doc("1.0.0", "Keep only a range of elements.", "O(N) in the elements removed"),
        _WRS,
        cmd_ltrim,
    ),
    cmd(
        "lrem",
        4,
        W,
        K1,
        _doc("1.0.0", "Remove elements equal to a value.", "O(N) in the length of the list"),
        _WRS,
        cmd_lrem,
    ),
    cmd(
        "linsert",
        5,
        WD,
        K1,
        _doc(
            "2.2.0",
            "Insert an element before or after another.",
            "O(N) in the length of the list",
        ),
        _WRS,
        cmd_linsert,
    ),
    cmd(
        "lpos",
        -3,
        R,
        K1,
        _doc("6.0.6", "The indexes of matching elements.", "O(N) in the elements scanned"),
        _RDS,
        cmd_lpos,
    ),
)

_BLOCKING = frozenset({Flag.WRITE, Flag.NOSCRIPT, Flag.BLOCKING})
_BLOCKING_DENYOOM = _BLOCKING | {Flag.DENYOOM}
_BLOCKING_ACL = "@write @list @slow @blocking"
_ON_KEYS = "O(N) in the keys given"
_ON_KEYS_POPPED = "O(N+M): N keys given, M elements popped"


_MULTI_KEY_COMMANDS = (
    cmd(
        "lmove",
        5,
        WD,
        (1, 2, 1),
        _doc("6.2.0", "Move an element from one end of a list to an end of another."),
        _WRS,
        cmd_lmove,
    ),
    cmd(
        "rpoplpush",
        3,
        WD,
        (1, 2, 1),
        _doc("1.2.0", "Move the last element of a list to the head of another."),
        _WRS,
        cmd_rpoplpush,
    ),
    cmd(
        "lmpop",
        -4,
        W,
        NOKEYS,
        _doc("7.0.0", "Pop elements from the first non-empty list.", _ON_KEYS_POPPED),
        _WRS,
        cmd_lmpop,
        key_finder=numkeys_keys(1),
    ),
    cmd(
        "blpop",
        -3,
        _BLOCKING,
        (1, -2, 1),
        _doc("2.0.0", "Pop the first element of the first non-empty list, or wait.", _ON_KEYS),
        _BLOCKING_ACL,
        cmd_blpop,
    ),
    cmd(
        "brpop",
        -3,
        _BLOCKING,
        (1, -2, 1),
        _doc("2.0.0", "Pop the last element of the first non-empty list, or wait.", _ON_KEYS),
        _BLOCKING_ACL,
        cmd_brpop,
    ),
    cmd(
        "blmove",
        6,
        _BLOCKING_DENYOOM,
        (1, 2, 1),
        _doc("6.2.0", "LMOVE, or wait for the source list."),
        _BLOCKING_ACL,
        cmd_blmove,
    ),
    cmd(
        "brpoplpush",
        4,
        _BLOCKING_DENYOOM,
        (1, 2, 1),
        _doc("2.2.0", "RPOPLPUSH, or wait for the source list."),
        _BLOCKING_ACL,
        cmd_brpoplpush,
    ),
    cmd(
        "blmpop",
        -5,
        frozenset({Flag.WRITE, Flag.BLOCKING}),
        NOKEYS,
        _doc("7.0.0", "LMPOP, or wait for one of the lists.", _ON_KEYS_POPPED),
        _BLOCKING_ACL,
        cmd_blmpop,
        key_finder=numkeys_keys(2),
    ),
)


COMMANDS: tuple[CommandSpec, ...] = (*_KEY_COMMANDS, *_MULTI_KEY_COMMANDS)
"""Every list command's table entry (`table.COMMANDS` gathers them)."""
