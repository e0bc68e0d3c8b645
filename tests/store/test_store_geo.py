"""Geo commands and the geohash arithmetic under them: values checked against
redis-server 7.0.15 (scores, GEOHASH strings, GEOPOS and distance bytes), the search's
box walk against a brute-force model, and Redis's partial quicksort against its contract.
The byte-for-byte comparison of every command and option is `scripts/geo.txt`."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.codec import encode
from cairn.resp.reply import NULL, NULL_ARRAY, OK, Array, Bulk, ErrorReply, Integer, SimpleString
from cairn.store import COMMANDS
from cairn.store import geohash as gh
from cairn.store.commands import geo_search
from cairn.store.commands.geo_args import format_distance, parse_double
from cairn.store.commands.spec import Flag
from cairn.store.db import Db

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX = ErrorReply("ERR syntax error")

PALERMO = (13.361389, 38.115556)
CATANIA = (15.087269, 37.502669)


# -- the geohash arithmetic -------------------------------------------------------------


def test_scores_and_strings_match_redis() -> None:
    # GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania on 7.0.15
    assert gh.point_score(*PALERMO) == 3479099956230698
    assert gh.point_score(*CATANIA) == 3479447370796909
    assert gh.geohash_string(3479099956230698.0) == b"sqc8b49rny0"
    assert gh.geohash_string(3479447370796909.0) == b"sqdtr74hyu0"
    assert gh.decode_score(3479099956230698.0) == (13.361389338970184, 38.1155563954963)


def test_limits_are_inclusive_and_the_top_edge_sets_bit_52() -> None:
    assert gh.point_score(180, gh.LAT_MAX) == 13510798882111488  # ZSCORE on Redis
    assert gh.point_score(-180, gh.LAT_MIN) == 0
    assert gh.point_score(180.0000001, 0) is None
    assert gh.point_score(0, -85.05112879) is None
    assert gh.decode_score(float(gh.point_score(180, gh.LAT_MAX) or 0)) == (180.0, gh.LAT_MAX)


@pytest.mark.parametrize(
    ("score", "position"),
    [
        # ZADD y <score> m, then GEOPOS y m on Redis 7.0.15 (x86-64's double -> uint64)
        (-1.0, (180.0, gh.LAT_MAX)),
        (1e30, (-179.99999731779099, -85.05112751263943)),
        (0.5, (-179.99999731779099, -85.05112751263943)),
        (math.inf, (-179.99999731779099, -85.05112751263943)),
        (-math.inf, (180.0, -85.05112751263943)),
        (2e19, (-179.99999731779099, -85.05112751263943)),
        (9.3e18, (180.0, gh.LAT_MAX)),
    ],
)
def test_any_sorted_set_score_decodes_like_redis(
    score: float, position: tuple[float, float]
) -> None:
    assert gh.decode_score(score) == position


def test_neighbours_touch_the_box() -> None:
    box = gh.encode(*PALERMO, step=10)
    assert box is not None
    area = gh.decode(box)
    around = gh.neighbours(box)
    assert gh.decode(around["north"]).lat_min == area.lat_max
    assert gh.decode(around["south"]).lat_max == area.lat_min
    assert gh.decode(around["east"]).long_min == area.long_max
    assert gh.decode(around["west"]).long_max == area.long_min
    north_east = gh.decode(around["north_east"])
    assert (north_east.long_min, north_east.lat_min) == (area.long_max, area.lat_max)
    assert len({b.bits for b in around.values()} | {box.bits}) == 9


def test_neighbours_wrap_around_the_antimeridian() -> None:
    box = gh.encode(179.99, 0, step=8)
    assert box is not None
    assert gh.decode(gh.neighbours(box)["east"]).long_min == -180.0


def test_distance_matches_redis() -> None:
    palermo = gh.decode_score(3479099956230698.0)
    catania = gh.decode_score(3479447370796909.0)
    assert format_distance(gh.distance(*palermo, *catania)) == b"166274.1516"
    assert gh.distance(*palermo, *palermo) == 0.0


def test_search_ranges_are_nine_boxes_at_most_and_pruned() -> None:
    small = gh.search_ranges(gh.Shape(*PALERMO, 1000.0, radius=1.0))
    assert 1 <= len(small) <= 9
    for low, high in small:
        assert low < high and (high - low) & (high - low - 1) == 0  # a power of two wide
    whole = gh.search_ranges(gh.Shape(0, 0, 1000.0, radius=20000.0))
    assert len(whole) == 4  # step 1: the whole grid is four boxes


def test_estimate_step() -> None:
    assert gh.estimate_step(0, 0) == 26
    assert gh.estimate_step(1e300, 0) == 1
    assert gh.estimate_step(1000, 0) == gh.estimate_step(1000, 70) + 1
    assert gh.estimate_step(5e-324, 0) == 26


# -- argument parsing and number formats --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"1", 1.0),
        (b"-2.5e-1", -0.25),
        (b"+3.", 3.0),
        (b".5", 0.5),
        (b"0x10", 16.0),
        (b"0x1p-2", 0.25),
        (b"-0X.8P1", -1.0),
        (b"inf", math.inf),
        (b"-Infinity", -math.inf),
        (b"1e-320", 1e-320),
        (b"0e-999999", 0.0),
        (b"0x0p-99999", 0.0),
    ],
)
def test_parse_double_accepts_what_strtod_reads(text: bytes, value: float) -> None:
    assert parse_double(text) == value


@pytest.mark.parametrize(
    "text",
    [b"", b" 1", b"1 ", b"1_0", b"nan", b"-nan", b"1e", b"0x", b"0x1p", b"1e400", b"1e-400",
     b"0x1p99999", b"0x1p-99999", b"1\x002", b"abc", b"--1"],
)  # fmt: skip
def test_parse_double_refuses_what_string2d_refuses(text: bytes) -> None:
    assert parse_double(text) is None


def test_format_distance_rounds_half_to_even() -> None:
    assert format_distance(0.0) == b"0.0000"
    assert format_distance(0.00005) == b"0.0000"  # scaled to exactly 0.5: to even
    assert format_distance(0.00025) == b"0.0002"  # exactly 2.5
    assert format_distance(0.00035) == b"0.0004"  # exactly 3.5
    assert format_distance(0.00015) == b"0.0001"  # scaled to 1.4999999999999998
    assert format_distance(123456.78905) == b"123456.7890"  # exactly ...0.5
    assert format_distance(3.0) == b"3.0000"
    assert format_distance(math.nan) == b"-922337203685477.5808"


# -- commands ------------------------------------------------------------------------------


def _pos(lon: bytes, lat: bytes) -> Array:
    return Array((Bulk(lon), Bulk(lat)))


BASICS: list[Step] = [
    ("GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania", Integer(2)),
    ("TYPE Sicily", SimpleString("zset")),
    ("GEOADD Sicily 13.361389 38.115556 Palermo", Integer(0)),
    ("GEOADD Sicily CH 13.361389 38.115556 Palermo 13.4 38.2 Catania", Integer(1)),
    ("GEOADD Sicily CH 15.087269 37.502669 Catania", Integer(1)),
    ("GEOADD Sicily NX 1 1 Catania 12.5 37.8 Marsala", Integer(1)),
    ("GEOADD Sicily XX CH 12.43 37.8 Marsala 1 1 Nowhere", Integer(1)),
    ("GEOADD Sicily NX XX 1 1 a", SYNTAX),
    ("GEOADD Sicily CH CH CH", SYNTAX),
    ("GEOADD Sicily 1 2 a 3", SYNTAX),
    ("GEOADD Sicily 1 1 ok 200 100 a", ErrorReply(
        "ERR invalid longitude,latitude pair 200.000000,100.000000")),
    ("GEOADD Sicily 1 abc a", ErrorReply("ERR value is not a valid float")),
    ("GEOPOS Sicily ok", Array((NULL_ARRAY,))),
    ("GEOPOS Sicily Palermo nonexisting", Array((
        _pos(b"13.36138933897018433", b"38.11555639549629859"), NULL_ARRAY))),
    ("GEOPOS missing a b", Array((NULL_ARRAY, NULL_ARRAY))),
    ("GEOHASH Sicily Palermo Catania nonexisting", bulks(b"sqc8b49rny0", b"sqdtr74hyu0", None)),
    ("GEOHASH missing a", bulks(None)),
    ("GEODIST Sicily Palermo Catania", Bulk(b"166274.1516")),
    ("GEODIST Sicily Palermo Catania KM", Bulk(b"166.2742")),
    ("GEODIST Sicily Palermo Catania mi", Bulk(b"103.3182")),
    ("GEODIST Sicily Palermo Catania ft", Bulk(b"545518.8700")),
    ("GEODIST Sicily Palermo nonexisting", NULL),
    ("GEODIST missing a b", NULL),
    ("GEODIST missing a b yards", ErrorReply(
        "ERR unsupported unit provided. please use M, KM, FT, MI")),
    ("GEODIST Sicily Palermo Catania km x", SYNTAX),
    ("GEOADD nokey XX 1 2 a", Integer(0)),
    ("EXISTS nokey", Integer(0)),
]  # fmt: skip

WRONG_TYPES: list[Step] = [
    ("SET s v", OK),
    ("GEOADD s 1 2 a", WRONGTYPE),
    ("GEOADD s 200 2 a", ErrorReply("ERR invalid longitude,latitude pair 200.000000,2.000000")),
    ("GEOPOS s a", WRONGTYPE),
    ("GEOHASH s a", WRONGTYPE),
    ("GEODIST s a b", WRONGTYPE),
    ("GEOSEARCH s FROMLONLAT 500 0 BYRADIUS 1 km", WRONGTYPE),
    ("GEORADIUS s 0 0 1 km", WRONGTYPE),
    ("GEORADIUSBYMEMBER_RO s a -1 km", WRONGTYPE),
    ("GEOSEARCHSTORE d s FROMLONLAT 0 0 BYRADIUS 1 km", WRONGTYPE),
]

SEARCHES: list[Step] = [
    ("GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania", Integer(2)),
    ("GEOADD Sicily 13.583333 37.316667 Agrigento", Integer(1)),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km",
     bulks(b"Agrigento", b"Palermo", b"Catania")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC",
     bulks(b"Catania", b"Agrigento", b"Palermo")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km DESC COUNT 1", bulks(b"Palermo")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1 ANY", bulks(b"Agrigento")),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 200 200 km ASC WITHDIST WITHHASH",
     Array((Array((Bulk(b"Palermo"), Bulk(b"0.0000"), Integer(3479099956230698))),
            Array((Bulk(b"Agrigento"), Bulk(b"90.9778"), Integer(3479030013248308)))))),
    ("GEORADIUS Sicily 15 37 100 km WITHCOORD",
     Array((Array((Bulk(b"Catania"), _pos(b"15.08726745843887329", b"37.50266842333162032"))),))),
    ("GEORADIUSBYMEMBER Sicily Agrigento 100 km", bulks(b"Agrigento", b"Palermo")),
    ("GEOSEARCH Sicily FROMMEMBER nonexisting BYRADIUS 1 km",
     ErrorReply("ERR could not decode requested zset member")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km COUNT 0",
     ErrorReply("ERR COUNT must be > 0")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km ANY",
     ErrorReply("ERR the ANY argument requires COUNT argument")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km BYBOX 1 1 km", SYNTAX),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 COUNT 1", ErrorReply(
        "ERR exactly one of BYRADIUS and BYBOX can be specified for geosearch")),
    ("GEOSEARCH Sicily BYRADIUS 1 km ASC WITHDIST", ErrorReply(
        "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch")),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km STORE d", SYNTAX),
    ("GEORADIUS_RO Sicily 15 37 1 km STORE d", SYNTAX),
    ("GEORADIUS Sicily 15 37 1 km STORE d WITHDIST", ErrorReply(
        "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and "
        "WITHCOORD options")),
    ("GEOSEARCH missing FROMMEMBER x BYRADIUS 1 km", Array(())),
    ("GEORADIUSBYMEMBER missing x not-a-radius km", Array(())),
]  # fmt: skip

STORES: list[Step] = [
    ("GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania", Integer(2)),
    ("SET d string", OK),
    ("EXPIRE d 100", Integer(1)),
    ("GEOSEARCHSTORE d Sicily FROMLONLAT 15 37 BYRADIUS 200 km", Integer(2)),
    ("TYPE d", SimpleString("zset")),
    ("TTL d", Integer(-1)),
    ("GEOHASH d Palermo Catania", bulks(b"sqc8b49rny0", b"sqdtr74hyu0")),
    ("GEOSEARCHSTORE d Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST COUNT 1", Integer(1)),
    ("GEOPOS d Palermo Catania",
     Array((NULL_ARRAY, _pos(b"-179.9999651312828064", b"-85.05111737375477787")))),
    ("GEORADIUS Sicily 15 37 200 km STOREDIST d STORE d2", Integer(2)),
    ("EXISTS d", Integer(1)),
    ("GEOHASH d2 Palermo", bulks(b"sqc8b49rny0")),
    ("GEOSEARCHSTORE d Sicily FROMLONLAT 15 37 BYRADIUS 1 m", Integer(0)),
    ("EXISTS d", Integer(0)),
    ("SET d string", OK),
    ("GEORADIUSBYMEMBER missing Palermo 1 km STORE d", Integer(0)),
    ("EXISTS d", Integer(0)),
    ("GEOSEARCHSTORE Sicily Sicily FROMLONLAT 15 37 BYRADIUS 100 km", Integer(1)),
    ("GEOHASH Sicily Palermo Catania", bulks(None, b"sqdtr74hyu0")),
]  # fmt: skip


def test_geo_basics() -> None:
    run_steps(BASICS)


def test_geo_wrong_types() -> None:
    run_steps(WRONG_TYPES)


def test_geo_searches() -> None:
    run_steps(SEARCHES)


def test_geo_stores() -> None:
    run_steps(STORES)


def test_geo_set_expires_renames_and_deletes() -> None:
    client = run_steps(
        [
            ("GEOADD g 13.361389 38.115556 Palermo", Integer(1)),
            ("PEXPIRE g 10", Integer(1)),
            ("GEOADD g 15.087269 37.502669 Catania", Integer(1)),
            ("PTTL g", Integer(10)),
            ("@+10", OK),
            ("GEOPOS g Palermo", Array((NULL_ARRAY,))),
            ("GEOADD g 15.087269 37.502669 Catania", Integer(1)),
            ("TTL g", Integer(-1)),
            ("GEOHASH g Palermo Catania", bulks(None, b"sqdtr74hyu0")),
            ("RENAME g h", OK),
            ("GEOSEARCH h FROMLONLAT 15 37 BYRADIUS 100 km", bulks(b"Catania")),
            ("GEOPOS g Catania", Array((NULL_ARRAY,))),
            ("DEL h", Integer(1)),
            ("GEOSEARCH h FROMLONLAT 15 37 BYRADIUS 100 km", Array(())),
            ("DBSIZE", Integer(0)),
        ]
    )
    assert client.call("EXISTS", "h") == Integer(0)


def test_coordinates_are_bulk_strings_in_resp3_too() -> None:
    client = run_steps([("GEOADD g 15 37 a", Integer(1))])
    reply = client.call("GEOPOS", "g", "a")
    assert (
        encode(reply, 3)
        == b"*1\r\n*2\r\n$20\r\n14.99999910593032837\r\n$20\r\n37.00000026605963654\r\n"
    )


def test_table_entries() -> None:
    assert Flag.MOVABLEKEYS in COMMANDS["georadius"].flags
    assert Flag.MOVABLEKEYS in COMMANDS["georadiusbymember"].flags
    assert COMMANDS["georadius_ro"].is_write is False
    assert COMMANDS["geosearchstore"].keys([b"geosearchstore", b"d", b"s", b"x"]) == [b"d", b"s"]
    keys = COMMANDS["georadius"].keys
    assert keys([b"georadius", b"k", b"1", b"2", b"3", b"km"]) == [b"k"]
    argv = [b"georadius", b"k", b"1", b"2", b"3", b"km", b"STORE", b"a", b"storedist", b"b"]
    assert keys(argv) == [b"k", b"b"]
    assert keys([b"georadius", b"k", b"1", b"2", b"3", b"km", b"STORE"]) == [b"k"]
    by_member = [b"georadiusbymember", b"k", b"m", b"3", b"km", b"STORE", b"a"]
    assert COMMANDS["georadiusbymember"].keys(by_member) == [b"k", b"a"]


# -- the search walks only its boxes -----------------------------------------------------


def test_search_reads_only_the_boxes_not_the_whole_set(monkeypatch: pytest.MonkeyPatch) -> None:
    client = MachineClient(clock=FakeClock())
    far = [x for i in range(3000) for x in (b"%.6f" % (140 + i * 0.001), b"-30", b"far%d" % i)]
    client.call("GEOADD", "g", *far)
    client.call("GEOADD", "g", *PALERMO_ARGS, *CATANIA_ARGS)
    rows_read = []
    fields = Db.fields

    def counting(self: Db, *args: object, **kwargs: object) -> list[tuple[bytes, bytes]]:
        rows = fields(self, *args, **kwargs)  # type: ignore[arg-type]
        rows_read.append(len(rows))
        return rows

    monkeypatch.setattr(Db, "fields", counting)
    reply = client.call("GEOSEARCH", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km")
    assert reply == bulks(b"Palermo", b"Catania")
    assert sum(rows_read) <= 2 and len(rows_read) <= 9


PALERMO_ARGS = (b"13.361389", b"38.115556", b"Palermo")
CATANIA_ARGS = (b"15.087269", b"37.502669", b"Catania")


def test_any_stops_reading_a_huge_box_early(monkeypatch: pytest.MonkeyPatch) -> None:
    client = MachineClient(clock=FakeClock())
    client.call("GEOADD", "g", *[x for i in range(2000) for x in (b"15", b"37", b"m%04d" % i)])
    rows_read = []
    fields = Db.fields

    def counting(self: Db, *args: object, **kwargs: object) -> list[tuple[bytes, bytes]]:
        rows = fields(self, *args, **kwargs)  # type: ignore[arg-type]
        rows_read.append(len(rows))
        return rows

    monkeypatch.setattr(Db, "fields", counting)
    reply = client.call("GEOSEARCH", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km",
                        "COUNT", "3", "ANY")  # fmt: skip
    assert reply == bulks(b"m0000", b"m0001", b"m0002")
    assert sum(rows_read) <= 256


# -- a model: the boxes miss no point inside the shape ------------------------------------

_points = st.lists(st.tuples(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    points=_points,
    # Within 2 degrees of the model's points, away from longitude +-180: Redis's boxes miss
    # a point at exactly 180 (geo.txt pins that edge against redis-server).
    center=st.tuples(st.floats(-177.0, 177.0), st.floats(-70.0, 70.0)),
    size_km=st.floats(0.0, 300.0),
    box=st.booleans(),
)
def test_search_finds_exactly_the_points_inside(
    points: list[tuple[float, float]], center: tuple[float, float], size_km: float, box: bool
) -> None:
    client = MachineClient(clock=FakeClock())
    cx, cy = center
    model: dict[bytes, tuple[float, float]] = {}
    for i, (dx, dy) in enumerate(points):
        lon, lat = min(180.0, max(-180.0, cx + dx)), cy + dy
        member = b"p%d" % i
        client.call("GEOADD", "g", repr(lon), repr(lat), member)
        score = gh.point_score(lon, lat)
        assert score is not None
        model[member] = gh.decode_score(float(score))
    size = repr(size_km)
    area = ["BYBOX", size, size, "km"] if box else ["BYRADIUS", size, "km"]
    reply = client.call("GEOSEARCH", "g", "FROMLONLAT", repr(cx), repr(cy), *area, "WITHDIST")
    shape = gh.Shape(cx, cy, 1000.0, width=size_km, height=size_km, is_box=True) if box \
        else gh.Shape(cx, cy, 1000.0, radius=size_km)  # fmt: skip
    expected = {}
    for member, (lon, lat) in model.items():
        dist = shape.distance_if_inside(lon, lat)
        if dist is not None:
            expected[member] = format_distance(dist / 1000.0)
    assert isinstance(reply, Array)
    found = {}
    for item in reply.items:
        assert isinstance(item, Array)
        name, dist_reply = item.items
        assert isinstance(name, Bulk) and isinstance(dist_reply, Bulk)
        found[name.value] = dist_reply.value
    assert found == expected


# -- Redis's partial quicksort ------------------------------------------------------------


def _point(dist: float, tag: int) -> geo_search._Point:
    return geo_search._Point(b"%d" % tag, 0.0, dist, 0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(dists=st.lists(st.integers(0, 6), max_size=120), data=st.data())
def test_partial_sort_puts_the_smallest_first_in_order(
    dists: list[int], data: st.DataObject
) -> None:
    points = [_point(float(d), i) for i, d in enumerate(dists)]
    keep = data.draw(st.integers(1, max(1, len(points))))
    ordered = list(points)
    geo_search._pqsort(ordered, geo_search._by_distance(geo_search._ASC), keep - 1)
    assert sorted(ordered, key=lambda p: p.member) == sorted(points, key=lambda p: p.member)
    assert [p.dist for p in ordered[:keep]] == sorted(p.dist for p in points)[:keep]


def test_partial_sort_is_deterministic_and_not_stable() -> None:
    rng = random.Random(3)
    points = [_point(float(rng.randrange(3)), i) for i in range(60)]
    first, second = list(points), list(points)
    compare = geo_search._by_distance(geo_search._ASC)
    geo_search._pqsort(first, compare, 9)
    geo_search._pqsort(second, compare, 9)
    assert first == second
    stable = sorted(points, key=lambda p: p.dist)[:10]
    assert [p.dist for p in first[:10]] == [p.dist for p in stable]
    assert first[:10] != stable  # ties in another order: why it is reproduced, not replaced


def test_partial_sort_of_many_points_needs_no_deep_recursion() -> None:
    points = [_point(float(i % 997) * (-1) ** i, i) for i in range(30000)]
    expected = sorted((p.dist for p in points), reverse=True)[:5]
    geo_search._pqsort(points, geo_search._by_distance(geo_search._DESC), 4)
    assert [p.dist for p in points[:5]] == expected
