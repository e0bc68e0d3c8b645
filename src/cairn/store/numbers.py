"""Number parsing and formatting exactly as Redis does it, without C's `long double`.

Redis parses integers with `string2ll` (no sign but `-`, no leading zeros, no spaces) and
does INCRBYFLOAT/HINCRBYFLOAT in x87 80-bit extended precision (`long double`: a 64-bit
significand), printing the result with `%.17Lf` and trimming trailing zeros. Python's
float is a 53-bit double, which would print `0.1` as `0.10000000000000001`, so this module
emulates the extended type with exact rationals: every value is a `Fraction` rounded to the
nearest representable extended value (ties to even), which is what glibc's `strtold` and
the FPU produce.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import TypeIs

LLONG_MIN = -(2**63)
LLONG_MAX = 2**63 - 1

_LL_RE = re.compile(rb"(?:-?[1-9][0-9]*|0)")


def parse_ll(data: bytes) -> int | None:
    """The signed 64-bit integer `data` spells in Redis' strict syntax, else None."""
    if len(data) > 20 or _LL_RE.fullmatch(data) is None:
        return None
    value = int(data)
    return value if LLONG_MIN <= value <= LLONG_MAX else None


def format_int(value: int) -> bytes:
    """The decimal bytes of an integer."""
    return b"%d" % value


# x87 extended precision: 64-bit significand, exponents of normal numbers -16382..16383.
_MANTISSA_BITS = 64
_MIN_EXP = -16382
_OVERFLOW = Fraction(2) ** 16384
_SUBNORMAL_QUANTUM_EXP = _MIN_EXP - (_MANTISSA_BITS - 1)
_MAX_CHARS = 5 * 1024

_INF = "inf"
LongDouble = Fraction | str
"""An extended-precision value: an exact `Fraction`, or `"inf"`/`"-inf"`."""


def _pow2(exp: int) -> Fraction:
    return Fraction(2**exp) if exp >= 0 else Fraction(1, 2**-exp)


def _round_half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


def round_extended(value: Fraction) -> LongDouble:
    """`value` rounded to the nearest extended-precision number (ties to even)."""
    if value == 0:
        return Fraction(0)
    magnitude = abs(value)
    exp = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if _pow2(exp) > magnitude:
        exp -= 1
    quantum_exp = max(exp - (_MANTISSA_BITS - 1), _SUBNORMAL_QUANTUM_EXP)
    quantum = _pow2(quantum_exp)
    rounded = _round_half_even(magnitude / quantum) * quantum
    if rounded >= _OVERFLOW:
        return _INF if value > 0 else "-" + _INF
    return rounded if value > 0 else -rounded


_DEC_RE = re.compile(rb"([+-]?)((?:[0-9]+\.?[0-9]*|\.[0-9]+))(?:[eE]([+-]?[0-9]+))?")
_HEX_RE = re.compile(
    rb"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+))(?:[pP]([+-]?[0-9]+))?"
)
_INF_RE = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)


_CHUNK = 1000
"""Digits converted at a time: CPython refuses int<->str conversions past 4300 digits, and
Redis accepts 5 KiB numbers (and prints up to ~4950 digits)."""


def _digits_to_int(digits: bytes, base: int) -> int:
    value = 0
    for i in range(0, len(digits), _CHUNK):
        chunk = digits[i : i + _CHUNK]
        value = value * base ** len(chunk) + int(chunk, base)
    return value


def _int_to_digits(value: int) -> bytes:
    if value < 10**_CHUNK:
        return b"%d" % value
    high, low = divmod(value, 10**_CHUNK)
    return _int_to_digits(high) + b"%0*d" % (_CHUNK, low)


def _exact(digits: bytes, exp: int, base: int) -> Fraction | str | None:
    """digits (with an optional point) in `base` (10, or 16 with a binary exponent) times
    10**exp or 2**exp; None when it underflows, "inf" when it overflows (decided before
    building astronomically large integers)."""
    whole, _, frac = digits.partition(b".")
    significant = (whole + frac).lstrip(b"0")
    if not significant:
        return Fraction(0)
    mantissa = _digits_to_int(significant, base)
    if base == 16:
        scale = exp - 4 * len(frac)
        magnitude = mantissa.bit_length() + scale
        if magnitude > 16400:
            return _INF
        if magnitude < -16500:
            return None
        return mantissa * _pow2(scale)
    scale = exp - len(frac)
    magnitude = len(significant) + scale
    if magnitude > 4940:
        return _INF
    if magnitude < -4970:
        return None
    return mantissa * (Fraction(10) ** scale)


def parse_long_double(data: bytes) -> LongDouble | None:
    """What Redis' `string2ld` accepts: a `strtold` number using the whole input, no
    leading space, not NaN, not out of range (overflow or underflow to zero)."""
    if not data or len(data) >= _MAX_CHARS:
        return None
    data = data.split(b"\x00", 1)[0]
    if not data:
        return Fraction(0)
    if match := _INF_RE.fullmatch(data):
        return "-" + _INF if match.group(1) == b"-" else _INF
    hexa = _HEX_RE.fullmatch(data)
    match = hexa or _DEC_RE.fullmatch(data)
    if match is None:
        return None
    exp = int(match.group(3) or b"0")
    exact = _exact(match.group(2), exp, 16 if hexa else 10)
    if exact is None or exact == _INF:
        return None
    assert isinstance(exact, Fraction)
    result = round_extended(-exact if match.group(1) == b"-" else exact)
    if isinstance(result, str) or (result == 0 and exact != 0):
        return None
    return result


def add_long_double(a: LongDouble, b: LongDouble) -> LongDouble | None:
    """`a + b` in extended precision; None when the result is NaN."""
    if isinstance(a, str) or isinstance(b, str):
        if isinstance(a, str) and isinstance(b, str) and a != b:
            return None
        return a if isinstance(a, str) else b
    return round_extended(a + b)


def is_finite(value: LongDouble | None) -> TypeIs[Fraction]:
    """Whether `value` is a finite number (not NaN, not infinite)."""
    return isinstance(value, Fraction)


def format_long_double(value: Fraction) -> bytes:
    """Redis' human-friendly `ld2string`: `%.17Lf`, trailing zeros and point removed."""
    scaled = _round_half_even(abs(value) * 10**17)
    whole, frac = divmod(scaled, 10**17)
    text = _int_to_digits(whole) + b".%017d" % frac
    text = text.rstrip(b"0").rstrip(b".")
    if value < 0 and text != b"0":
        text = b"-" + text
    return text
