"""Redis' small text routines the request parser must reproduce byte for byte.

`split_inline` is `sdssplitargs` (how Redis splits an inline command such as
`SET k "a b"` into arguments) and `parse_ll` is `string2ll` (the strict integer
syntax of `*<count>` and `$<length>` headers). Both follow Redis 7 exactly, quirks
included, because a client sees the difference as a different reply.
"""

from __future__ import annotations

from typing import Final

_BLANKS: Final = frozenset(b" \t\n\v\f\r")  # C isspace() in the "C" locale
_TOKEN_ENDS: Final = frozenset(b" \n\r\t")  # what ends an unquoted token (besides NUL)
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_BACKSLASH: Final = 0x5C
_DQUOTE: Final = 0x22
_SQUOTE: Final = 0x27
_X: Final = ord("x")
_SPECIAL: Final = (b'"', b"'", b"\v", b"\f")

# string2ll refuses strings of LONG_STR_SIZE (21) bytes or more.
_MAX_LL_CHARS: Final = 20
_LL_MIN: Final = -(2**63)
_LL_MAX: Final = 2**63 - 1


def parse_ll(text: bytes) -> int | None:
    """Parse a signed 64-bit decimal the way Redis' `string2ll` does, or None.

    Refused: empty text, a `+` sign, spaces, leading zeros (`01`), `-0`, anything over
    20 characters, values outside the signed 64-bit range.
    """
    if not text or len(text) > _MAX_LL_CHARS:
        return None
    if text == b"0":
        return 0
    negative = text[0] == 0x2D
    digits = text[1:] if negative else text
    if not digits.isdigit() or digits[0] == 0x30:
        return None
    value = -int(digits) if negative else int(digits)
    return value if _LL_MIN <= value <= _LL_MAX else None


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline command line into arguments, or None on unbalanced quotes.

    `line` excludes the line terminator. Unquoted tokens end at space, tab, CR or LF;
    blanks between tokens are C's `isspace` set; double quotes understand `\\n \\r \\t
    \\b \\a \\xHH` and `\\<any>`; single quotes only `\\'`; a closing quote must be
    followed by a blank or the end of the line. A NUL ends the line, as in C.
    """
    nul = line.find(b"\x00")
    if nul >= 0:
        line = line[:nul]
    if not any(c in line for c in _SPECIAL):
        return line.split()
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _BLANKS:
            i += 1
        if i >= n:
            return args
        token = _read_token(line, i)
        if token is None:
            return None
        arg, i = token
        args.append(arg)


def _at(line: bytes, i: int) -> int:
    """The byte at `i`, or 0 past the end (C's terminating NUL)."""
    return line[i] if i < len(line) else 0


def _read_token(line: bytes, i: int) -> tuple[bytes, int] | None:
    """Read one token starting at `i`; return it and the index after it, or None."""
    out = bytearray()
    in_dq = in_sq = False
    while True:
        c = _at(line, i)
        if in_dq:
            step = _dquoted(line, i, out)
            if step is None:
                return None
            if step < 0:
                return bytes(out), i + 1
            i = step
            continue
        if in_sq:
            if c == _BACKSLASH and _at(line, i + 1) == _SQUOTE:
                out.append(_SQUOTE)
                i += 2
            elif c == _SQUOTE:
                return (bytes(out), i + 1) if _closes(line, i) else None
            elif c == 0:
                return None
            else:
                out.append(c)
                i += 1
            continue
        if c == 0 or c in _TOKEN_ENDS:
            return bytes(out), (i + 1 if c else i)
        if c == _DQUOTE:
            in_dq = True
        elif c == _SQUOTE:
            in_sq = True
        else:
            out.append(c)
        i += 1


def _dquoted(line: bytes, i: int, out: bytearray) -> int | None:
    """Consume one unit inside double quotes at `i`.

    Returns the next index, -1 when `i` holds the closing quote, None on an error
    (unterminated, or a closing quote glued to the next token).
    """
    c = _at(line, i)
    if c == _BACKSLASH:
        nxt = _at(line, i + 1)
        if nxt == _X and _at(line, i + 2) in _HEX and _at(line, i + 3) in _HEX:
            out.append(int(line[i + 2 : i + 4], 16))
            return i + 4
        if nxt:
            out.append(_ESCAPES.get(nxt, nxt))
            return i + 2
    elif c == _DQUOTE:
        return -1 if _closes(line, i) else None
    elif c == 0:
        return None
    out.append(c)
    return i + 1


def _closes(line: bytes, i: int) -> bool:
    """Whether the quote at `i` may close its token: a blank or the end must follow."""
    nxt = _at(line, i + 1)
    return nxt == 0 or nxt in _BLANKS
