"""Redis's geohash arithmetic, reproduced bit for bit and float for float.

A geo set is a sorted set whose scores are 52-bit geohashes: longitude and latitude are
each scaled into 26 bits over Redis's ranges (longitude -180..180, latitude
-85.05112878..85.05112878, the Web Mercator limits) and interleaved, latitude in the even
bit positions and longitude in the odd ones. Two points close on the map often share a
long prefix, so a box of the geohash grid is one contiguous range of scores.

A search (GEOSEARCH, GEORADIUS) covers its shape with the grid box holding the center at a
step (grid resolution) chosen from the radius, plus that box's eight neighbours, drops the
neighbours the shape cannot reach, and walks only those score ranges, testing each point's
exact distance. `search_ranges` computes those ranges as Redis does (same step, same
neighbours in the same order, same pruning, same skipping of a repeated neighbour), so
results come out in Redis's order.

Every computation follows the C code's operation order on IEEE doubles, and the libm
functions are C's own (Python's `math` calls them), so decoded coordinates and distances
are the very doubles Redis prints. Where C yields NaN or infinity instead of raising
(`asin` of a value a rounding put past 1, `cos` of infinity), the helpers here do too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LONG_MIN = -180.0
LONG_MAX = 180.0
LAT_MIN = -85.05112878
LAT_MAX = 85.05112878
STEP_MAX = 26
"""The precision of stored scores: 26 bits per coordinate, 52 in all."""

EARTH_RADIUS_M = 6372797.560856
"""The earth's radius Redis's haversine uses (the quadratic mean radius of WGS-84)."""

_MERCATOR_MAX = 20037726.37
_D_R = math.pi / 180.0
_U64 = (1 << 64) - 1
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA
_ALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"

Range = tuple[float, float]
_WGS84 = ((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX))
_STANDARD = ((-180.0, 180.0), (-90.0, 90.0))


# -- C's math: NaN where Python would raise ------------------------------------------


def _sin(x: float) -> float:
    return math.sin(x) if math.isfinite(x) else math.nan


def _cos(x: float) -> float:
    return math.cos(x) if math.isfinite(x) else math.nan


def _asin(x: float) -> float:
    return math.asin(x) if -1.0 <= x <= 1.0 else math.nan


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else math.nan


def _div(a: float, b: float) -> float:
    """`a / b` with C's IEEE results for a zero divisor."""
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _deg_rad(deg: float) -> float:
    return deg * _D_R


def _rad_deg(rad: float) -> float:
    return rad / _D_R


# -- bits --------------------------------------------------------------------------


def _spread(v: int) -> int:
    """The low 32 bits of `v` moved to the even bit positions of a 64-bit word."""
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & _EVEN


def _squash(v: int) -> int:
    """The inverse of `_spread`: the even bits of `v` packed into 32 bits."""
    v &= _EVEN
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0xFFFFFFFF


def interleave(lat_bits: int, long_bits: int) -> int:
    """Latitude bits in the even positions, longitude bits in the odd ones."""
    return _spread(lat_bits & 0xFFFFFFFF) | (_spread(long_bits & 0xFFFFFFFF) << 1)


def deinterleave(bits: int) -> tuple[int, int]:
    """(latitude bits, longitude bits) of an interleaved 64-bit hash."""
    return _squash(bits), _squash(bits >> 1)


@dataclass(frozen=True, slots=True)
class HashBits:
    """A box of the geohash grid: `bits` (2 * `step` significant bits) at resolution
    `step`. The all-zero value is Redis's "no box" (a neighbour a search skips)."""

    bits: int
    step: int

    @property
    def is_zero(self) -> bool:
        """Whether this is the "no box" marker."""
        return self.bits == 0 and self.step == 0


NO_BOX = HashBits(0, 0)


def encode(
    longitude: float, latitude: float, step: int, ranges: tuple[Range, Range] = _WGS84
) -> HashBits | None:
    """The grid box of `step` holding the point, over `ranges` ((long min, max), (lat min,
    max)); None outside Redis's limits or the ranges."""
    (long_min, long_max), (lat_min, lat_max) = ranges
    if not (LONG_MIN <= longitude <= LONG_MAX and LAT_MIN <= latitude <= LAT_MAX):
        return None
    if not (lat_min <= latitude <= lat_max and long_min <= longitude <= long_max):
        return None
    lat_offset = (latitude - lat_min) / (lat_max - lat_min) * float(1 << step)
    long_offset = (longitude - long_min) / (long_max - long_min) * float(1 << step)
    return HashBits(interleave(int(lat_offset), int(long_offset)), step)


@dataclass(frozen=True, slots=True)
class Area:
    """The bounds of a grid box."""

    long_min: float
    long_max: float
    lat_min: float
    lat_max: float


def decode(box: HashBits, ranges: tuple[Range, Range] = _WGS84) -> Area:
    """The bounds of grid box `box` over `ranges`."""
    (long_min, long_max), (lat_min, lat_max) = ranges
    lat_cell, long_cell = deinterleave(box.bits)
    cells = float(1 << box.step)
    lat_scale = lat_max - lat_min
    long_scale = long_max - long_min
    return Area(
        long_min + (long_cell * 1.0 / cells) * long_scale,
        long_min + (((long_cell + 1) & 0xFFFFFFFF) * 1.0 / cells) * long_scale,
        lat_min + (lat_cell * 1.0 / cells) * lat_scale,
        lat_min + (((lat_cell + 1) & 0xFFFFFFFF) * 1.0 / cells) * lat_scale,
    )


def _center(area: Area) -> tuple[float, float]:
    longitude = min(max((area.long_min + area.long_max) / 2, LONG_MIN), LONG_MAX)
    latitude = min(max((area.lat_min + area.lat_max) / 2, LAT_MIN), LAT_MAX)
    return longitude, latitude


def score_bits(score: float) -> int:
    """The 64-bit hash Redis reads from a score, `(uint64_t)score` as x86-64 computes it:
    scores a geo command wrote are exact integers, but a sorted set filled by ZADD may
    hold anything, and GEOPOS must then decode what Redis decodes (out-of-range values
    convert to the "integer indefinite" 2**63, negative ones wrap)."""
    if math.isnan(score):
        return 1 << 63
    if score < 2.0**63:
        return 1 << 63 if score < -(2.0**63) else int(score) & _U64
    shifted = score - 2.0**63
    raw = int(shifted) if shifted < 2.0**63 else 1 << 63
    return raw ^ (1 << 63)


def decode_score(score: float) -> tuple[float, float]:
    """(longitude, latitude) of a stored score: the center of its step-26 box, clamped to
    Redis's limits."""
    return _center(decode(HashBits(score_bits(score), STEP_MAX)))


def point_score(longitude: float, latitude: float) -> int | None:
    """The score GEOADD stores for a point (its 52-bit hash); None outside the limits."""
    box = encode(longitude, latitude, STEP_MAX)
    return None if box is None else align52(box)


def align52(box: HashBits) -> int:
    """A box's bits shifted to the top of 52 bits: the smallest score inside it."""
    return (box.bits << (52 - box.step * 2)) & _U64


def geohash_string(score: float) -> bytes:
    """The 11-character standard geohash GEOHASH prints: the decoded point re-encoded over
    the standard ranges (latitude -90..90), 5 bits a character, the 11th always '0'."""
    longitude, latitude = decode_score(score)
    box = encode(longitude, latitude, STEP_MAX, _STANDARD)
    bits = 0 if box is None else box.bits
    chars = bytes(_ALPHABET[(bits >> (52 - (i + 1) * 5)) & 0x1F] for i in range(10))
    return chars + b"0"


# -- neighbours -----------------------------------------------------------------------


def _move(box: HashBits, d: int, moving: int, keeping: int) -> HashBits:
    """`box` moved one cell along the axis whose bits are the `moving` mask."""
    if d == 0:
        return box
    shift = 64 - box.step * 2
    axis = box.bits & moving
    other = box.bits & keeping
    zz = keeping >> shift
    axis = axis + (zz + 1) if d > 0 else (axis | zz) - (zz + 1)
    axis &= (moving >> shift) & _U64
    return HashBits((axis & _U64) | other, box.step)


def _move_x(box: HashBits, d: int) -> HashBits:
    return _move(box, d, _ODD, _EVEN)


def _move_y(box: HashBits, d: int) -> HashBits:
    return _move(box, d, _EVEN, _ODD)


_DIRECTIONS = {
    "north": (0, 1),
    "south": (0, -1),
    "east": (1, 0),
    "west": (-1, 0),
    "north_east": (1, 1),
    "north_west": (-1, 1),
    "south_east": (1, -1),
    "south_west": (-1, -1),
}
"""The eight neighbours, in the order a search walks them, as (x, y) cell moves."""


def neighbours(box: HashBits) -> dict[str, HashBits]:
    """The eight boxes around `box` (wrapping around the grid's edges)."""
    return {name: _move_y(_move_x(box, dx), dy) for name, (dx, dy) in _DIRECTIONS.items()}


# -- distances --------------------------------------------------------------------------


def lat_distance(lat1: float, lat2: float) -> float:
    """Meters between two latitudes on one meridian."""
    return EARTH_RADIUS_M * abs(_deg_rad(lat2) - _deg_rad(lat1))


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine great-circle distance in meters, as Redis computes it."""
    lon1r = _deg_rad(lon1)
    lon2r = _deg_rad(lon2)
    v = _sin((lon2r - lon1r) / 2)
    if v == 0.0:
        return lat_distance(lat1, lat2)
    lat1r = _deg_rad(lat1)
    lat2r = _deg_rad(lat2)
    u = _sin((lat2r - lat1r) / 2)
    a = u * u + _cos(lat1r) * _cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS_M * _asin(_sqrt(a))


# -- search shapes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """A search area: a circle (`radius`) or an axis-aligned box (`width` x `height`)
    around (`longitude`, `latitude`), sizes in a unit worth `conversion` meters."""

    longitude: float
    latitude: float
    conversion: float
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0
    is_box: bool = False

    def reach_m(self) -> float:
        """The distance from the center to the farthest edge or corner, in meters."""
        if not self.is_box:
            return self.radius * self.conversion
        half_w, half_h = self.width / 2, self.height / 2
        return _sqrt(half_w * half_w + half_h * half_h) * self.conversion

    def bounds(self) -> Area:
        """The longitude/latitude bounds of the shape (wider on its pole side)."""
        half_h = self.conversion * (self.height / 2 if self.is_box else self.radius)
        half_w = self.conversion * (self.width / 2 if self.is_box else self.radius)
        lat_delta = _rad_deg(half_h / EARTH_RADIUS_M)
        top = _rad_deg(_div(half_w / EARTH_RADIUS_M, _cos(_deg_rad(self.latitude + lat_delta))))
        bottom = _rad_deg(_div(half_w / EARTH_RADIUS_M, _cos(_deg_rad(self.latitude - lat_delta))))
        long_delta = bottom if self.latitude < 0 else top
        return Area(
            self.longitude - long_delta,
            self.longitude + long_delta,
            self.latitude - lat_delta,
            self.latitude + lat_delta,
        )

    def distance_if_inside(self, longitude: float, latitude: float) -> float | None:
        """The distance in meters from the center to a point, None when the point is
        outside the shape."""
        if not self.is_box:
            dist = distance(self.longitude, self.latitude, longitude, latitude)
            return None if dist > self.radius * self.conversion else dist
        if lat_distance(latitude, self.latitude) > self.height * self.conversion / 2:
            return None
        across = distance(longitude, latitude, self.longitude, latitude)
        if across > self.width * self.conversion / 2:
            return None
        return distance(self.longitude, self.latitude, longitude, latitude)


def estimate_step(range_m: float, latitude: float) -> int:
    """The grid step whose boxes roughly fit a search reaching `range_m` meters."""
    if range_m == 0:
        return STEP_MAX
    step = 1
    while range_m < _MERCATOR_MAX:
        range_m *= 2
        step += 1
    step -= 2
    if latitude > 66 or latitude < -66:
        step -= 1
        if latitude > 80 or latitude < -80:
            step -= 1
    return min(max(step, 1), STEP_MAX)


def search_boxes(shape: Shape) -> list[HashBits]:
    """The nine boxes covering `shape`, center first then north, south, east, west,
    north-east, north-west, south-east, south-west; a box the shape cannot reach is
    `NO_BOX`."""
    bounds = shape.bounds()
    step = estimate_step(shape.reach_m(), shape.latitude)
    center, around = _boxes_at(shape, step)
    if step > 1 and _too_coarse(around, bounds):
        step -= 1
        center, around = _boxes_at(shape, step)
    if step >= 2:
        _prune(decode(center), bounds, around)
    return [center, *around.values()]


def _boxes_at(shape: Shape, step: int) -> tuple[HashBits, dict[str, HashBits]]:
    center = encode(shape.longitude, shape.latitude, step)
    assert center is not None, "the search center is range-checked by the caller"
    return center, neighbours(center)


def _too_coarse(around: dict[str, HashBits], bounds: Area) -> bool:
    """Whether the shape's bounds reach past the neighbour boxes (the step must drop)."""
    return (
        decode(around["north"]).lat_max < bounds.lat_max
        or decode(around["south"]).lat_min > bounds.lat_min
        or decode(around["east"]).long_max < bounds.long_max
        or decode(around["west"]).long_min > bounds.long_min
    )


_SIDES = {
    "south": ("south", "south_west", "south_east"),
    "north": ("north", "north_east", "north_west"),
    "west": ("west", "south_west", "north_west"),
    "east": ("east", "south_east", "north_east"),
}


def _prune(area: Area, bounds: Area, around: dict[str, HashBits]) -> None:
    """Replace by `NO_BOX` the neighbours on each side where the center box already
    covers the shape's bounds."""
    covered = {
        "south": area.lat_min < bounds.lat_min,
        "north": area.lat_max > bounds.lat_max,
        "west": area.long_min < bounds.long_min,
        "east": area.long_max > bounds.long_max,
    }
    for side, names in _SIDES.items():
        if covered[side]:
            for name in names:
                around[name] = NO_BOX


def search_ranges(shape: Shape) -> list[tuple[int, int]]:
    """The score ranges [min, max) a search of `shape` walks, in walk order: one per box
    of `search_boxes`, skipping the empty ones and a neighbour equal to the previous
    neighbour walked (huge radii make neighbours coincide; like Redis, the center box is
    never compared, so a neighbour equal to it is walked twice)."""
    ranges = []
    previous: HashBits | None = None
    for i, box in enumerate(search_boxes(shape)):
        if box.is_zero or (previous is not None and box == previous):
            continue
        ranges.append((align52(box), align52(HashBits(box.bits + 1, box.step))))
        if i > 0:
            previous = box
    return ranges
