"""SORT and SORT_RO.

(The command itself is below `strtod`, which SORT uses to read scores as Redis does.)
"""

from __future__ import annotations

import re
from fractions import Fraction

_SPACE = b" \t\n\v\f\r"
_FLOAT = re.compile(
    rb"([ \t\n\v\f\r]*)([+-]?)(?:"
    rb"(0x(?=\.?[0-9a-f])[0-9a-f]*(?:\.[0-9a-f]*)?(?:p[+-]?[0-9]+)?)"
    rb"|((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)"
    rb"|(inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)"
    rb")",
    re.IGNORECASE,
)
_SMALLEST_NORMAL = 2.2250738585072014e-308


def strtod(data: bytes) -> tuple[float, int, bool] | None:
    """glibc's `strtod` on the C string `data` (it ends at a NUL byte): (value, bytes
    consumed, whether it set ERANGE), or None when nothing converts.

    ERANGE is set on overflow (a finite number too large: the value is +-inf) and on
    underflow (a result that is zero or subnormal and not exact), as glibc does. Decimal
    and hexadecimal forms, `inf`/`infinity` and `nan`/`nan(...)` are read, after leading
    white space, like C; Python's float parsing is correctly rounded, like glibc's.
    """
    match = _FLOAT.match(data.split(b"\0", 1)[0])
    if match is None:
        return None
    negative = match.group(2) == b"-"
    hex_text, dec_text, word = match.group(3), match.group(4), match.group(5)
    if word is not None:
        special = float("nan") if word[:1].lower() == b"n" else float("inf")
        return -special if negative else special, match.end(), False
    is_hex = hex_text is not None
    text = (hex_text if is_hex else dec_text).decode()
    try:
        value = float.fromhex(text) if is_hex else float(text)
    except OverflowError:
        value = float("inf")
    erange = _out_of_range(value, text, is_hex)
    return -value if negative else value, match.end(), erange


def _out_of_range(value: float, text: str, is_hex: bool) -> bool:
    """Whether glibc sets ERANGE for `text` read as `value` (non-negative)."""
    if value == float("inf"):
        return True
    if value >= _SMALLEST_NORMAL:
        return False
    mantissa = text[2:].lower().partition("p")[0] if is_hex else text.lower().partition("e")[0]
    if value == 0.0:
        return any(c not in "0." for c in mantissa)
    exact = _hex_fraction(text) if is_hex else _decimal_fraction(text)
    return exact != Fraction(value)


def _decimal_fraction(text: str) -> Fraction:
    mantissa, _, exponent = text.lower().partition("e")
    whole, _, part = mantissa.partition(".")
    digits = int((whole + part) or "0")
    if digits == 0:
        return Fraction(0)
    return Fraction(digits) * Fraction(10) ** (int(exponent or "0") - len(part))


def _hex_fraction(text: str) -> Fraction:
    mantissa, _, exponent = text[2:].lower().partition("p")
    whole, _, part = mantissa.partition(".")
    digits = int((whole + part) or "0", 16)
    return Fraction(digits) * Fraction(2) ** (int(exponent or "0") - 4 * len(part))
