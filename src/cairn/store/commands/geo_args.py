"""Arguments and number formats the geo commands share, parsed and printed as Redis 7.0
does: doubles as `strtod` reads them (`string2d`), coordinates range-checked against the
geohash limits, units, and the two ways Redis prints geo numbers (coordinates as its
"human" long double, `%.17Lf` trimmed of trailing zeros; distances with four decimals)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from cairn.resp.reply import Bulk, ErrorReply, Reply
from cairn.store.commands.common import fail
from cairn.store.commands.spec import NOT_FLOAT
from cairn.store.geohash import LAT_MAX, LAT_MIN, LONG_MAX, LONG_MIN
from cairn.store.numbers import LLONG_MIN, format_long_double

_DEC = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_INF = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)


def _mantissa_is_zero(data: bytes, hexa: bool) -> bool:
    body = data.lstrip(b"+-")[2 if hexa else 0 :]
    mantissa = re.split(rb"[pP]" if hexa else rb"[eE]", body)[0]
    return not mantissa.strip(b"0.")


def parse_double(data: bytes) -> float | None:
    """What Redis's `string2d` accepts: a `strtod` number (decimal, hexadecimal or an
    infinity) using the whole argument, no leading space, not NaN, not overflowing to
    infinity nor underflowing to zero."""
    if _INF.fullmatch(data):
        return float(data)
    hexa = _HEX.fullmatch(data) is not None
    if not hexa and _DEC.fullmatch(data) is None:
        return None
    try:
        value = float.fromhex(data.decode()) if hexa else float(data)
    except OverflowError:
        return None
    if math.isinf(value) or (value == 0.0 and not _mantissa_is_zero(data, hexa)):
        return None
    return value


def double_arg(data: bytes, error: ErrorReply = NOT_FLOAT) -> float:
    """A double argument; `error` (by default Redis's "not a valid float") otherwise."""
    value = parse_double(data)
    if value is None:
        raise fail(error)
    return value


def lon_lat(lon: bytes, lat: bytes) -> tuple[float, float]:
    """A longitude and latitude argument pair, parsed and range-checked like Redis."""
    x, y = double_arg(lon), double_arg(lat)
    if not (LONG_MIN <= x <= LONG_MAX and LAT_MIN <= y <= LAT_MAX):
        raise fail(ErrorReply(f"ERR invalid longitude,latitude pair {x:f},{y:f}"))
    return x, y


_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}


def unit(data: bytes) -> float:
    """Meters per `data` unit (m, km, ft, mi, in any case)."""
    factor = _UNITS.get(data.lower())
    if factor is None:
        raise fail(ErrorReply("ERR unsupported unit provided. please use M, KM, FT, MI"))
    return factor


def radius_args(args: Sequence[bytes]) -> tuple[float, float]:
    """`radius unit` arguments: (radius, meters per unit)."""
    radius = double_arg(args[0], ErrorReply("ERR need numeric radius"))
    if radius < 0:
        raise fail(ErrorReply("ERR radius cannot be negative"))
    return radius, unit(args[1])


def box_args(args: Sequence[bytes]) -> tuple[float, float, float]:
    """`width height unit` arguments: (width, height, meters per unit)."""
    width = double_arg(args[0], ErrorReply("ERR need numeric width"))
    height = double_arg(args[1], ErrorReply("ERR need numeric height"))
    if height < 0 or width < 0:
        raise fail(ErrorReply("ERR height or width cannot be negative"))
    return width, height, unit(args[2])


def coordinate(value: float) -> Reply:
    """A coordinate as Redis prints it: its human long double (`%.17Lf` of the exact
    double, trailing zeros trimmed), a bulk string.

    Redis sends a RESP3 double with that same text; Cairn's `Double` prints `%.17g`, so
    the bulk string is kept in RESP3 too (same digits, another reply type)."""
    return Bulk(format_long_double(Fraction(value)))


def format_distance(value: float) -> bytes:
    """A distance with exactly four decimals, as Redis's `fixedpoint_d2string`: the value
    times 10000 rounded half to even (`llrint`); a value out of `long long` range (NaN
    included) prints as `llrint`'s LLONG_MIN does."""
    if value == 0:
        return b"0.0000"
    scaled_f = value * 10000.0
    in_range = math.isfinite(scaled_f) and abs(scaled_f) < 2.0**63
    scaled = round(scaled_f) if in_range else LLONG_MIN
    whole, frac = divmod(abs(scaled), 10000)
    return b"%s%d.%04d" % (b"-" if scaled < 0 else b"", whole, frac)
