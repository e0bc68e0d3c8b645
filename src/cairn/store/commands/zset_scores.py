"""Sorted-set scores and ranges as Redis 7.0 reads them: doubles by C's `strtod`, score
ranges with ``(`` exclusive bounds, lex ranges with ``[``/``(``/``-``/``+``.

Redis parses a score two ways, and the difference shows:

* a score or increment (ZADD, ZINCRBY, WEIGHTS) goes through `string2d`: the whole
  argument must be one `strtod` number, no leading space, not NaN, and neither overflow
  (``1e400``) nor underflow to zero (``1e-400``) is allowed (a subnormal result is);
* a range bound (ZCOUNT, ZRANGEBYSCORE, ...) goes through `zslParseRange`: plain `strtod`
  whose end must be the string's end or an embedded NUL, so leading spaces are skipped,
  an empty bound is 0, overflow gives the infinities, and only NaN or trailing bytes fail.

`strtod` reads decimal and hexadecimal (``0x1p3``) numbers and ``inf``/``infinity``/``nan``
in any case; Python's `float` agrees on the value (both round correctly) but not on the
syntax (it allows ``1_0`` and spaces at both ends), so the syntax is checked here first.

Ranges are turned into bounds on the record families of `cairn.store.zset_records`: a
score range into [start, end) positions of the score index, a lex range into [start, end)
positions of the member records (members sort by bytes there, the order BYLEX uses when
all scores are equal, which is the only case Redis defines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.resp.reply import ErrorReply
from cairn.store.commands.common import fail
from cairn.store.commands.spec import NOT_FLOAT
from cairn.store.zset_records import INDEX, MEMBER, sortable

NOT_FLOAT_RANGE = ErrorReply("ERR min or max is not a float")
NOT_LEX_RANGE = ErrorReply("ERR min or max not valid string range item")

_NUMBER = re.compile(
    rb"[+-]?(?:(?P<inf>inf(?:inity)?)|(?P<nan>nan(?:\([0-9a-z_]*\))?)"
    rb"|0x(?P<hex>(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?)"
    rb"|(?P<dec>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?))",
    re.IGNORECASE,
)
_SPACE = b" \t\n\v\f\r"
_PLAIN_DIGITS = 15
"""Up to this many bytes, an optionally signed run of ASCII digits is a plain integer
that a double holds exactly (``-0`` gives ``-0.0``, as `strtod` does)."""


@dataclass(frozen=True, slots=True)
class Strtod:
    """What `strtod` makes of a whole string: the value and whether it set ERANGE."""

    value: float
    overflow: bool = False
    underflow: bool = False


def strtod(text: bytes) -> Strtod | None:
    """`text` read as one `strtod` number (None: it is not one, or is NaN)."""
    match = _NUMBER.fullmatch(text)
    if match is None or match.group("nan") is not None:
        return None
    negative = text[:1] == b"-"
    if match.group("inf") is not None:
        return Strtod(float("-inf") if negative else float("inf"))
    hexa = match.group("hex")
    digits = hexa if hexa is not None else match.group("dec")
    try:
        value = float.fromhex(text.decode()) if hexa is not None else float(text)
    except OverflowError:
        return Strtod(float("-inf") if negative else float("inf"), overflow=True)
    if value in (float("inf"), float("-inf")):
        return Strtod(value, overflow=True)
    mantissa = re.split(rb"[pPeE]", digits, maxsplit=1)[0]
    underflow = value == 0.0 and mantissa.strip(b"0.") != b""
    return Strtod(value, underflow=underflow)


def parse_score(data: bytes) -> float | None:
    """A score or increment as Redis' `string2d` reads it (see the module docstring)."""
    if not data or data[0] in _SPACE:
        return None
    if len(data) <= _PLAIN_DIGITS and (data.isdigit() or (data[0] == 45 and data[1:].isdigit())):
        return float(data)  # a plain integer (what most scores are): exact, no ERANGE
    parsed = strtod(data)
    if parsed is None or parsed.overflow or parsed.underflow:
        return None
    return parsed.value


def score_arg(data: bytes, error: ErrorReply = NOT_FLOAT) -> float:
    """A score argument; `error` (by default "value is not a valid float") otherwise."""
    value = parse_score(data)
    if value is None:
        raise fail(error)
    return value


def parse_bound(data: bytes) -> float | None:
    """A range bound's number as `zslParseRange` reads it (see the module docstring)."""
    text = data.split(b"\x00", 1)[0]
    body = text.lstrip(_SPACE)
    if not body:
        return 0.0 if not text else None
    parsed = strtod(body)
    return None if parsed is None else parsed.value


def _next_position(position: bytes) -> bytes:
    """The first index position past every member of the score `position` names."""
    value = int.from_bytes(position[1:9], "big") + 1
    return position[:1] + value.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class ScoreRange:
    """A score interval of ZRANGEBYSCORE and friends: `low`..`high`, each end exclusive
    when its flag is set."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def is_empty(self) -> bool:
        """Whether no score can be in the range (Redis' `zslIsInRange` test)."""
        return self.low > self.high or (self.low == self.high and (self.low_open or self.high_open))

    def contains(self, score: float) -> bool:
        """Whether `score` is in the range."""
        above = score > self.low if self.low_open else score >= self.low
        below = score < self.high if self.high_open else score <= self.high
        return above and below

    def bounds(self) -> tuple[bytes, bytes]:
        """[start, end) positions of the range in the score index."""
        start = INDEX + sortable(self.low)
        end = INDEX + sortable(self.high)
        if self.low_open:
            start = _next_position(start)
        if not self.high_open:
            end = _next_position(end)
        return start, end


def _bound(data: bytes) -> tuple[float, bool]:
    open_ = data[:1] == b"("
    value = parse_bound(data[1:] if open_ else data)
    if value is None:
        raise fail(NOT_FLOAT_RANGE)
    return value, open_


def score_range(low: bytes, high: bytes) -> ScoreRange:
    """The range of two bound arguments; "min or max is not a float" otherwise."""
    low_value, low_open = _bound(low)
    high_value, high_open = _bound(high)
    return ScoreRange(low_value, high_value, low_open, high_open)


def _lex_item(data: bytes, is_low: bool) -> bytes:
    """The member-record position a lex bound stands for (`is_low`: a start, inclusive;
    otherwise an end, exclusive)."""
    head, rest = data[:1], data[1:]
    if head == b"-" and not rest:
        return MEMBER
    if head == b"+" and not rest:
        return INDEX
    if head == b"[":
        return MEMBER + rest if is_low else MEMBER + rest + b"\x00"
    if head == b"(":
        return MEMBER + rest + b"\x00" if is_low else MEMBER + rest
    raise fail(NOT_LEX_RANGE)


def lex_range(low: bytes, high: bytes) -> tuple[bytes, bytes]:
    """[start, end) member-record positions of a lex range (start >= end: empty);
    "min or max not valid string range item" otherwise."""
    return _lex_item(low, True), _lex_item(high, False)
