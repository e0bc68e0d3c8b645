"""Glob-style pattern matching with exactly the semantics of Redis' `stringmatchlen`.

Used by KEYS, SCAN MATCH and HSCAN MATCH. Supported syntax: `*` (any run of bytes), `?`
(one byte), `[abc]`, `[^abc]`, `[a-z]` (bounds in either order), and `\\x` to match `x`
literally. Malformed patterns behave as Redis treats them (an unterminated `[` class ends at
the end of the pattern, a trailing backslash matches a backslash). Range bounds compare as
C's signed `char`, as Redis does on x86-64, which matters only for ranges that straddle
0x80. Recursion on `*` is limited like Redis (a pattern nesting deeper than 1000 stars
matches nothing), and the "skip longer matches" short-cut keeps pathological patterns
polynomial instead of exponential.
"""

from __future__ import annotations

_MAX_NESTING = 1000


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 128 else byte


def _lower(byte: int) -> int:
    return byte + 32 if 65 <= byte <= 90 else byte


class _Matcher:
    """One match of `pattern` against `string`; indexes past the end read as NUL, like C."""

    __slots__ = ("nocase", "pattern", "string")

    def __init__(self, pattern: bytes, string: bytes, nocase: bool) -> None:
        self.pattern = pattern
        self.string = string
        self.nocase = nocase

    def pat(self, i: int) -> int:
        return self.pattern[i] if i < len(self.pattern) else 0

    def same(self, a: int, b: int) -> bool:
        return _lower(a) == _lower(b) if self.nocase else a == b

    def match(self) -> bool:
        """Redis' recursive algorithm run iteratively: thanks to its "skip longer
        matches" rule only the most recent `*` is ever retried at a later string offset,
        so one backtrack point suffices (and deep patterns cannot exhaust the stack)."""
        string = self.string
        p, plen, s, slen = 0, len(self.pattern), 0, len(string)
        star: tuple[int, int, int, int, int] | None = None
        stars = 0  # the `*`s passed on the current path: Redis' recursion depth
        while True:
            outcome = self.step_until_star_or_end(p, plen, s, slen)
            if isinstance(outcome, bool):
                if outcome:
                    return True
                if star is None:
                    return False
                p, plen, s, slen, stars = star
                s, slen = s + 1, slen - 1
                if slen == 0:
                    return False
                star = (p, plen, s, slen, stars)
                continue
            p, plen, s, slen = outcome
            while plen and self.pat(p + 1) == 0x2A:
                p, plen = p + 1, plen - 1
            if plen == 1:
                return True
            stars += 1
            if stars > _MAX_NESTING or slen == 0:
                return False
            p, plen = p + 1, plen - 1
            star = (p, plen, s, slen, stars)

    def step_until_star_or_end(
        self, p: int, plen: int, s: int, slen: int
    ) -> tuple[int, int, int, int] | bool:
        """Match from (p, s) up to the next `*` (returns the state there) or to the end
        (returns whether pattern and string ended together)."""
        string = self.string
        while plen and slen:
            c = self.pat(p)
            if c == 0x2A:  # '*'
                return p, plen, s, slen
            if c == 0x3F:  # '?'
                pass
            elif c == 0x5B:  # '['
                p, plen, ok = self.match_class(p + 1, plen - 1, string[s])
                if not ok:
                    return False
            else:
                if c == 0x5C and plen >= 2:  # '\\'
                    p += 1
                    plen -= 1
                if not self.same(self.pat(p), string[s]):
                    return False
            s += 1
            slen -= 1
            p += 1
            plen -= 1
            if slen == 0:
                while self.pat(p) == 0x2A:
                    p += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    def match_class(self, p: int, plen: int, ch: int) -> tuple[int, int, bool]:
        """Match one byte against a `[...]` class starting after the `[`; returns the
        position of the closing `]` (or where Redis stops) and whether it matched."""
        negate = self.pat(p) == 0x5E  # '^'
        if negate:
            p += 1
            plen -= 1
        matched = False
        while True:
            c = self.pat(p)
            if c == 0x5C and plen >= 2:
                p += 1
                plen -= 1
                if self.pat(p) == ch:
                    matched = True
            elif c == 0x5D:  # ']'
                break
            elif plen == 0:
                p -= 1
                plen += 1
                break
            elif plen >= 3 and self.pat(p + 1) == 0x2D:  # '-'
                matched |= self.in_range(c, self.pat(p + 2), ch)
                p += 2
                plen -= 2
            elif self.same(c, ch):
                matched = True
            p += 1
            plen -= 1
        return p, plen, matched != negate

    def in_range(self, start: int, end: int, ch: int) -> bool:
        lo, hi, c = _signed(start), _signed(end), _signed(ch)
        if lo > hi:
            lo, hi = hi, lo
        if self.nocase:
            lo, hi, c = _lower(lo), _lower(hi), _lower(c)
        return lo <= c <= hi


def stringmatch(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    """Whether `string` matches the glob `pattern` (Redis `stringmatchlen`)."""
    return _Matcher(pattern, string, nocase).match()
