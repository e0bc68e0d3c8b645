"""Geo commands. A geo set is a sorted set whose scores are 52-bit geohashes
(`cairn.store.geohash`), stored with the sorted-set record layout (`zset_records`), so
ZSCORE, ZRANGE and the rest read it like any sorted set.

GEOADD is a ZADD of encoded points; GEOPOS, GEODIST and GEOHASH decode members' scores,
one point read per member. The searches are in `geo_search`, the shared argument
parsing and number formats in `geo_args`; this module also holds the geo table entries.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, NULL_ARRAY, Array, Bulk, Integer, Reply
from cairn.store import zset_records as zrec
from cairn.store.commands import geo_search
from cairn.store.commands.common import fail, lookup_typed
from cairn.store.commands.define import K1, WD, R, cmd
from cairn.store.commands.geo_args import coordinate, format_distance, lon_lat, unit
from cairn.store.commands.spec import SYNTAX, Ctx
from cairn.store.geohash import decode_score, distance, geohash_string, point_score
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import ZSET


def _position(score: float | None) -> Reply:
    if score is None:
        return NULL_ARRAY
    longitude, latitude = decode_score(score)
    return Array((coordinate(longitude), coordinate(latitude)))


# -- GEOADD, GEOPOS, GEODIST, GEOHASH ------------------------------------------------------


def _geo(ctx: Ctx, key: bytes) -> Meta | None:
    return lookup_typed(ctx.db, key, ValueType.ZSET)


def _add_options(args: Sequence[bytes]) -> tuple[int, bool, bool, bool]:
    """GEOADD's leading NX/XX/CH flags: (index of the first longitude, nx, xx, ch)."""
    nx = xx = ch = False
    i = 1
    while i < len(args):
        opt = args[i].lower()
        if opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        elif opt != b"ch":
            break
        ch = ch or opt == b"ch"
        i += 1
    if (len(args) - i) % 3 or (nx and xx) or i == len(args):
        raise fail(SYNTAX)
    return i, nx, xx, ch


def cmd_geoadd(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEOADD key [NX|XX] [CH] longitude latitude member [...]: the number of members added
    (with CH: added or moved). Every pair is checked before anything is written."""
    key = args[0]
    first, nx, xx, ch = _add_options(args)
    points = []
    for i in range(first, len(args), 3):
        hashed = point_score(*lon_lat(args[i], args[i + 1]))
        assert hashed is not None
        points.append((float(hashed), args[i + 2]))
    meta = _geo(ctx, key)
    added = changed = 0
    for score, member in points:
        old = None if meta is None and added == 0 else zrec.score_of(ctx.db, key, member)
        if (old is None and xx) or (old is not None and (nx or old == score)):
            continue
        zrec.put_member(ctx.db, key, member, score, old)
        added += old is None
        changed += old is not None
    if added:
        size = added + (0 if meta is None else meta.size)
        expire = None if meta is None else meta.expire_ms
        ctx.db.put_meta(key, Meta(ValueType.ZSET, expire, size=size), meta is not None)
    if added or changed:
        ctx.notify(ZSET, "zadd", key)
    return Integer(added + changed if ch else added)


def _scores(ctx: Ctx, key: bytes, members: Sequence[bytes]) -> list[float | None]:
    if _geo(ctx, key) is None:
        return [None for _ in members]
    return [zrec.score_of(ctx.db, key, member) for member in members]


def cmd_geopos(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEOPOS key [member ...]: each member's [longitude, latitude], or a null array."""
    return Array(tuple(_position(s) for s in _scores(ctx, args[0], args[1:])))


def cmd_geohash(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEOHASH key [member ...]: each member's 11-character geohash, or null."""
    scores = _scores(ctx, args[0], args[1:])
    return Array(tuple(NULL if s is None else Bulk(geohash_string(s)) for s in scores))


def cmd_geodist(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GEODIST key member1 member2 [M|KM|FT|MI]: the distance, or null if either member
    (or the key) is missing."""
    if len(args) > 4:
        raise fail(SYNTAX)
    to_meters = unit(args[3]) if len(args) == 4 else 1.0
    first, second = _scores(ctx, args[0], args[1:3])
    if first is None or second is None:
        return NULL
    a, b = decode_score(first), decode_score(second)
    return Bulk(format_distance(distance(a[0], a[1], b[0], b[1]) / to_meters))


# -- table ----------------------------------------------------------------------------------

_GW = "@write @geo @slow"
_GR = "@read @geo @slow"
_SEARCH_COST = "O(N+log(M)) in the points in the searched boxes (N) and the set (M)"


def _d(since: str, summary: str, complexity: str) -> tuple[str, str, str, str]:
    return ("geo", since, complexity, summary)


COMMANDS = (
    cmd(
        "geoadd",
        -5,
        WD,
        K1,
        _d("3.2.0", "Add or move points of a geo set.", "O(log(N)) per point"),
        _GW,
        cmd_geoadd,
    ),
    cmd(
        "geopos",
        -2,
        R,
        K1,
        _d("3.2.0", "The longitude and latitude of members.", "O(log(N)) per member"),
        _GR,
        cmd_geopos,
    ),
    cmd(
        "geodist",
        -4,
        R,
        K1,
        _d("3.2.0", "The distance between two members.", "O(log(N))"),
        _GR,
        cmd_geodist,
    ),
    cmd(
        "geohash",
        -2,
        R,
        K1,
        _d("3.2.0", "The standard geohash strings of members.", "O(log(N)) per member"),
        _GR,
        cmd_geohash,
    ),
    cmd(
        "geosearch",
        -7,
        R,
        K1,
        _d("6.2.0", "Members inside a circle or a box.", _SEARCH_COST),
        _GR,
        geo_search.cmd_geosearch,
    ),
    cmd(
        "geosearchstore",
        -8,
        WD,
        (1, 2, 1),
        _d("6.2.0", "Store the members inside a circle or a box.", _SEARCH_COST),
        _GW,
        geo_search.cmd_geosearchstore,
    ),
    cmd(
        "georadius",
        -6,
        WD,
        K1,
        _d("3.2.0", "Members within a radius of a point (deprecated).", _SEARCH_COST),
        _GW,
        geo_search.cmd_georadius,
        key_finder=geo_search.georadius_keys,
    ),
    cmd(
        "georadiusbymember",
        -5,
        WD,
        K1,
        _d("3.2.0", "Members within a radius of a member (deprecated).", _SEARCH_COST),
        _GW,
        geo_search.cmd_georadiusbymember,
        key_finder=geo_search.georadius_keys,
    ),
    cmd(
        "georadius_ro",
        -6,
        R,
        K1,
        _d("3.2.10", "GEORADIUS without STORE (deprecated).", _SEARCH_COST),
        _GR,
        geo_search.cmd_georadius_ro,
    ),
    cmd(
        "georadiusbymember_ro",
        -5,
        R,
        K1,
        _d("3.2.10", "GEORADIUSBYMEMBER without STORE (deprecated).", _SEARCH_COST),
        _GR,
        geo_search.cmd_georadiusbymember_ro,
    ),
)
"""The geo commands' table entries (gathered into `table.COMMANDS`)."""
