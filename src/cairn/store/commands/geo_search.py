"""Geo searches: GEOSEARCH, GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and the _RO
variants, one engine with Redis's `georadiusGeneric` argument rules and replies.

A search covers its shape (a circle or a box) with the nine geohash boxes Redis picks
(`geohash.search_ranges`) and walks only their score ranges in the sorted set, each one
seek plus the records inside the box, never the whole set, testing every point's exact
distance. The results are ordered as Redis orders them: walk order without ASC/DESC, a
stable sort by distance when every result is returned, and Redis's own partial
quicksort (reproduced step for step) when COUNT keeps fewer than were found, since it
orders equal distances differently. Then they are replied, or stored as a sorted set
scored by geohash (or by distance with STOREDIST) replacing the destination.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Reply
from cairn.store import zset_records as zrec
from cairn.store.commands.common import fail, int_arg, lookup_typed
from cairn.store.commands.geo_args import (
    box_args,
    coordinate,
    format_distance,
    lon_lat,
    radius_args,
)
from cairn.store.commands.spec import SYNTAX, Ctx
from cairn.store.db import Db
from cairn.store.geohash import Shape, decode_score, search_ranges
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import GENERIC, ZSET

# -- options --------------------------------------------------------------------

_COORDS = 1
_MEMBER = 2
_NOSTORE = 4
_SEARCH = 8
_SEARCHSTORE = 16

_ASC = 1
_DESC = 2


@dataclass
class _Query:
    """A search's parsed arguments."""

    flags: int
    source: bytes
    center: tuple[float, float] | None = None
    radius: float | None = None
    box: tuple[float, float] | None = None
    conversion: float = 1.0
    withdist: bool = False
    withhash: bool = False
    withcoord: bool = False
    sort: int = 0
    any: bool = False
    count: int = 0
    store: bytes | None = None
    storedist: bool = False
    from_member: bool = False
    from_lonlat: bool = False

    def shape(self) -> Shape:
        """The area searched (its center and size are known once parsing succeeded)."""
        assert self.center is not None
        lon, lat = self.center
        if self.box is not None:
            width, height = self.box
            return Shape(lon, lat, self.conversion, width=width, height=height, is_box=True)
        assert self.radius is not None
        return Shape(lon, lat, self.conversion, radius=self.radius)


def _member_center(ctx: Ctx, key: bytes, member: bytes) -> tuple[float, float]:
    score = zrec.score_of(ctx.db, key, member)
    if score is None:
        raise fail(ErrorReply("ERR could not decode requested zset member"))
    return decode_score(score)


def _fixed_part(ctx: Ctx, args: Sequence[bytes], q: _Query, exists: bool) -> int:
    """Parse the arguments before the options; the index where the options start."""
    if q.flags & _COORDS:
        q.center = lon_lat(args[1], args[2])
        q.radius, q.conversion = radius_args(args[3:5])
        return 5
    if q.flags & _MEMBER:
        if exists:
            q.center = _member_center(ctx, args[0], args[1])
            q.radius, q.conversion = radius_args(args[2:4])
        return 4
    if q.flags & _SEARCHSTORE:
        q.store = args[0]
        return 2
    return 1


def _flag_option(q: _Query, opt: bytes) -> bool:
    """Apply an option that takes no value; whether `opt` was one."""
    if opt == b"withdist":
        q.withdist = True
    elif opt == b"withhash":
        q.withhash = True
    elif opt == b"withcoord":
        q.withcoord = True
    elif opt == b"any":
        q.any = True
    elif opt in (b"asc", b"desc"):
        q.sort = _ASC if opt == b"asc" else _DESC
    elif opt == b"storedist" and q.flags & _SEARCHSTORE:
        q.storedist = True
    else:
        return False
    return True


def _option(ctx: Ctx, args: Sequence[bytes], i: int, q: _Query, exists: bool) -> int:
    """Parse the option at `args[i]`; the index of the next one. An option Redis does
    not take here (or that lacks its values) is a syntax error."""
    opt, left, flags = args[i].lower(), len(args) - i - 1, q.flags
    search = flags & _SEARCH
    if opt == b"count" and left >= 1:
        q.count = int_arg(args[i + 1])
        if q.count <= 0:
            raise fail(ErrorReply("ERR COUNT must be > 0"))
        return i + 2
    if opt in (b"store", b"storedist") and left >= 1 and not flags & (_NOSTORE | _SEARCH):
        q.store, q.storedist = args[i + 1], opt == b"storedist"
        return i + 2
    if _flag_option(q, opt):
        return i + 1
    if opt == b"frommember" and left >= 1 and search and not q.from_lonlat:
        q.from_member = True
        if exists:
            q.center = _member_center(ctx, q.source, args[i + 1])
        return i + 2
    if opt == b"fromlonlat" and left >= 2 and search and not q.from_member:
        q.center, q.from_lonlat = lon_lat(args[i + 1], args[i + 2]), True
        return i + 3
    if opt == b"byradius" and left >= 2 and search and q.box is None:
        q.radius, q.conversion = radius_args(args[i + 1 : i + 3])
        return i + 3
    if opt == b"bybox" and left >= 3 and search and q.radius is None:
        width, height, q.conversion = box_args(args[i + 1 : i + 4])
        q.box = (width, height)
        return i + 4
    raise fail(SYNTAX)


def _check_query(ctx: Ctx, q: _Query) -> None:
    """The option combinations Redis refuses once every option parsed."""
    if q.store is not None and (q.withdist or q.withhash or q.withcoord):
        who = "GEOSEARCHSTORE" if q.flags & _SEARCHSTORE else "STORE option in GEORADIUS"
        raise fail(
            ErrorReply(f"ERR {who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
        )
    if q.flags & _SEARCH and not (q.from_member or q.from_lonlat):
        raise fail(
            ErrorReply(
                f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {ctx.name}"
            )
        )
    if q.flags & _SEARCH and q.radius is None and q.box is None:
        raise fail(
            ErrorReply(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {ctx.name}")
        )
    if q.any and not q.count:
        raise fail(ErrorReply("ERR the ANY argument requires COUNT argument"))


def _parse_query(
    ctx: Ctx, args: Sequence[bytes], source: bytes, flags: int, exists: bool
) -> _Query:
    """Every argument of a search, in Redis's order (so the first bad one is reported)."""
    q = _Query(flags, source)
    i = _fixed_part(ctx, args, q, exists)
    while i < len(args):
        i = _option(ctx, args, i, q, exists)
    _check_query(ctx, q)
    return q


# -- searches: walking the boxes ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Point:
    """A member found inside the search shape."""

    member: bytes
    score: float
    dist: float
    longitude: float
    latitude: float


_PAGE = 256
"""Index records read per seek while walking a box (bounds memory when ANY stops early)."""


def _in_range(db: Db, key: bytes, low: int, high: int) -> Iterator[tuple[bytes, float]]:
    """(member, score) of `key` with `low <= score < high`, by (score, member), read a page
    at a time."""
    start, end = zrec.index_field(float(low)), zrec.index_field(float(high))
    while True:
        page = list(zrec.by_score(db, key, start, end, _PAGE))
        yield from page
        if len(page) < _PAGE:
            return
        member, score = page[-1]
        start = zrec.index_field(score, member) + b"\x00"


def _collect(db: Db, key: bytes, shape: Shape, limit: int) -> list[_Point]:
    """The members inside `shape`, box by box in Redis's walk order; at most `limit` of
    them when `limit` (ANY) is not 0."""
    found: list[_Point] = []
    for low, high in search_ranges(shape):
        if limit and len(found) >= limit:
            break
        for member, score in _in_range(db, key, low, high):
            longitude, latitude = decode_score(score)
            dist = shape.distance_if_inside(longitude, latitude)
            if dist is not None:
                found.append(_Point(member, score, dist, longitude, latitude))
            if limit and len(found) >= limit:
                break
    return found


# -- searches: ordering ---------------------------------------------------------------------


def _by_distance(sort: int) -> Callable[[_Point, _Point], int]:
    sign = 1 if sort == _ASC else -1

    def compare(a: _Point, b: _Point) -> int:
        return sign * ((a.dist > b.dist) - (a.dist < b.dist))

    return compare


def _order(points: list[_Point], sort: int, keep: int) -> None:
    """Sort `points` by distance in place as Redis does: a stable sort (glibc's merge sort)
    when all are returned, else Redis's partial quicksort of the first `keep`, whose
    order among equal distances differs and is reproduced exactly."""
    if keep == len(points):
        points.sort(key=lambda p: p.dist, reverse=sort == _DESC)
    else:
        _pqsort(points, _by_distance(sort), keep - 1)


def _med3(a: list[_Point], i: int, j: int, k: int, cmp: Callable[[_Point, _Point], int]) -> int:
    if cmp(a[i], a[j]) < 0:
        return j if cmp(a[j], a[k]) < 0 else (k if cmp(a[i], a[k]) < 0 else i)
    return j if cmp(a[j], a[k]) > 0 else (i if cmp(a[i], a[k]) < 0 else k)


def _swap_runs(a: list[_Point], i: int, j: int, n: int) -> None:
    for step in range(n):
        a[i + step], a[j + step] = a[j + step], a[i + step]


def _insertion_sort(a: list[_Point], lo: int, n: int, cmp: Callable[[_Point, _Point], int]) -> None:
    for m in range(lo + 1, lo + n):
        k = m
        while k > lo and cmp(a[k - 1], a[k]) > 0:
            a[k - 1], a[k] = a[k], a[k - 1]
            k -= 1


def _pivot(a: list[_Point], lo: int, n: int, cmp: Callable[[_Point, _Point], int]) -> int:
    middle = lo + n // 2
    if n == 7:
        return middle
    left, right = lo, lo + n - 1
    if n > 40:
        d = n // 8
        left = _med3(a, left, left + d, left + 2 * d, cmp)
        middle = _med3(a, middle - d, middle, middle + d, cmp)
        right = _med3(a, right - 2 * d, right - d, right, cmp)
    return _med3(a, left, middle, right, cmp)


def _partition(
    a: list[_Point], lo: int, n: int, cmp: Callable[[_Point, _Point], int]
) -> tuple[int, int]:
    """Bentley-McIlroy three-way partition around `a[lo]`: the sizes of the run smaller
    than the pivot (moved to the front) and of the run larger (moved to the back)."""
    pa = pb = lo + 1
    pc = pd = lo + n - 1
    while True:
        while pb <= pc and (c := cmp(a[pb], a[lo])) <= 0:
            if c == 0:
                a[pa], a[pb] = a[pb], a[pa]
                pa += 1
            pb += 1
        while pb <= pc and (c := cmp(a[pc], a[lo])) >= 0:
            if c == 0:
                a[pc], a[pd] = a[pd], a[pc]
                pd -= 1
            pc -= 1
        if pb > pc:
            break
        a[pb], a[pc] = a[pc], a[pb]
        pb += 1
        pc -= 1
    end = lo + n
    r = min(pa - lo, pb - pa)
    _swap_runs(a, lo, pb - r, r)
    r = min(pd - pc, end - pd - 1)
    _swap_runs(a, pb, end - r, r)
    return pb - pa, pd - pc


def _pqsort(a: list[_Point], cmp: Callable[[_Point, _Point], int], last: int) -> None:
    """Redis's `pqsort`: a Bentley-McIlroy quicksort that leaves alone the parts wholly
    past position `last`, so afterwards `a[:last + 1]` holds the smallest elements in
    order, equal ones where Redis puts them. Redis recurses into the lower part and loops
    on the upper one; the parts are disjoint, so a work list (no recursion depth to run
    out of on unlucky input) sorts them to the same result."""
    todo = [(0, len(a))]
    while todo:
        lo, n = todo.pop()
        if n < 7:
            _insertion_sort(a, lo, n, cmp)
            continue
        pivot = _pivot(a, lo, n, cmp)
        a[lo], a[pivot] = a[pivot], a[lo]
        smaller, larger = _partition(a, lo, n, cmp)
        if smaller > 1 and lo <= last:
            todo.append((lo, smaller))
        if larger > 1 and lo + n - larger <= last:
            todo.append((lo + n - larger, larger))


# -- searches: replies ----------------------------------------------------------------------


def _item(point: _Point, q: _Query) -> Reply:
    """One result: the member alone, or [member, dist?, hash?, [lon, lat]?]."""
    parts: list[Reply] = [Bulk(point.member)]
    if q.withdist:
        parts.append(Bulk(format_distance(point.dist / q.conversion)))
    if q.withhash:
        parts.append(Integer(int(point.score)))
    if q.withcoord:
        parts.append(Array((coordinate(point.longitude), coordinate(point.latitude))))
    return parts[0] if len(parts) == 1 else Array(tuple(parts))


def _store(ctx: Ctx, dest: bytes, points: Sequence[_Point], q: _Query) -> Reply:
    """Replace `dest` with a sorted set of the results (scored by geohash, or by distance
    with STOREDIST); an empty result deletes `dest`."""
    scores = {p.member: p.dist / q.conversion if q.storedist else p.score for p in points}
    deleted = ctx.db.overwrite(dest)
    for member, score in scores.items():
        zrec.put_member(ctx.db, dest, member, score, None)
    if scores:
        ctx.db.put_meta(dest, Meta(ValueType.ZSET, size=len(scores)), False)
        event = "geosearchstore" if ctx.name == "geosearchstore" else "georadiusstore"
        ctx.notify(ZSET, event, dest)
    elif deleted:
        ctx.notify(GENERIC, "del", dest)
    return Integer(len(points))


def _search(ctx: Ctx, args: Sequence[bytes], source_at: int, flags: int) -> Reply:
    """Every geo search: `source_at` is the source key's index in `args`."""
    source = args[source_at]
    meta = lookup_typed(ctx.db, source, ValueType.ZSET)
    q = _parse_query(ctx, args, source, flags, meta is not None)
    if meta is None:
        if q.store is None:
            return Array(())
        if ctx.db.delete(q.store):
            ctx.notify(GENERIC, "del", q.store)
        return Integer(0)
    if q.count and not q.sort and not q.any:
        q.sort = _ASC
    points = _collect(ctx.db, source, q.shape(), q.count if q.any else 0)
    keep = min(q.count, len(points)) if q.count else len(points)
    if q.sort:
        _order(points, q.sort, keep)
    if q.store is not None:
        return _store(ctx, q.store, points[:keep], q)
    return Array(tuple(_item(p, q) for p in points[:keep]))


def cmd_geosearch(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEOSEARCH key FROMMEMBER member|FROMLONLAT lon lat BYRADIUS r unit|BYBOX w h unit
    [ASC|DESC] [COUNT n [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]."""
    return _search(ctx, args, 0, _SEARCH)


def cmd_geosearchstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEOSEARCHSTORE dest source ... [STOREDIST]: GEOSEARCH stored into `dest`."""
    return _search(ctx, args, 1, _SEARCH | _SEARCHSTORE)


def cmd_georadius(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEORADIUS key lon lat radius unit [options] [STORE key] [STOREDIST key]."""
    return _search(ctx, args, 0, _COORDS)


def cmd_georadiusbymember(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEORADIUSBYMEMBER key member radius unit [options] [STORE key] [STOREDIST key]."""
    return _search(ctx, args, 0, _MEMBER)


def cmd_georadius_ro(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEORADIUS_RO: GEORADIUS without STORE."""
    return _search(ctx, args, 0, _COORDS | _NOSTORE)


def cmd_georadiusbymember_ro(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEORADIUSBYMEMBER_RO: GEORADIUSBYMEMBER without STORE."""
    return _search(ctx, args, 0, _MEMBER | _NOSTORE)


def georadius_keys(argv: Sequence[bytes]) -> list[bytes]:
    """GEORADIUS/GEORADIUSBYMEMBER's keys as Redis finds them: the source, and the key
    after the last STORE or STOREDIST from argument 5 on."""
    stored = None
    i = 5
    while i < len(argv):
        if argv[i].lower() in (b"store", b"storedist") and i + 1 < len(argv):
            stored = argv[i + 1]
            i += 1
        i += 1
    keys = [argv[1]] if len(argv) > 1 else []
    return keys if stored is None else [*keys, stored]
