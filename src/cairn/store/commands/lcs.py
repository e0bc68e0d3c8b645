"""LCS: the longest common subsequence of two strings, its length, or its matching ranges.

Redis fills the whole (len1+1) x (len2+1) dynamic-programming table and walks it back from
the far corner. Cairn computes the same table bit-parallel (Hyyro's row recurrence on Python
integers: one big-integer step per byte of the shorter string) and keeps each row as the
bits where the LCS length grows along the longer string, so any cell is a prefix popcount;
the walk then takes Redis' exact path (ties step back in the second string), so the string
and the ranges are Redis' own.

Bounds: Redis refuses a table of more than 2**27 cells (4 bytes each within
proto-max-bulk-len, `MAX_CELLS`), and so does Cairn, with Redis' error, before allocating
anything. Within it the cost is bounded: the rows take one bit per cell (16 MB at most),
the recurrence is one big-integer step per byte of the shorter string, and the walk back
O(len(shorter)) Python steps (runs along the longer string are jumped over).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Map, Reply
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.spec import MAX_STRING, SYNTAX, Ctx
from cairn.store.layout import ValueType

MAX_CELLS = MAX_STRING // 4
"""Redis' bound: the table's 4-byte cells may not exceed proto-max-bulk-len."""

NOT_STRINGS = ErrorReply("ERR The specified keys must contain string values")
LEN_AND_IDX = ErrorReply("ERR If you want both the length and indexes, please just use IDX.")
TOO_MANY_CELLS = ErrorReply(
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
)


@dataclass(slots=True)
class _Options:
    """LCS's options after the two keys."""

    length: bool = False
    idx: bool = False
    with_len: bool = False
    min_len: int = 0


def _parse(args: Sequence[bytes]) -> _Options:
    opts = _Options()
    j = 0
    while j < len(args):
        opt = args[j].lower()
        if opt == b"idx":
            opts.idx = True
        elif opt == b"len":
            opts.length = True
        elif opt == b"withmatchlen":
            opts.with_len = True
        elif opt == b"minmatchlen" and j + 1 < len(args):
            opts.min_len = max(int_arg(args[j + 1]), 0)
            j += 1
        else:
            raise fail(SYNTAX)
        j += 1
    if opts.idx and opts.length:
        raise fail(LEN_AND_IDX)
    return opts


def _positions(text: bytes, byte: int) -> int:
    """The integer whose bit p is set where text[p] == byte."""
    table = bytearray(b"0" * 256)
    table[byte] = ord("1")
    return int(text.translate(table)[::-1], 2)


def _masks(outer: bytes, inner: bytes) -> dict[int, int]:
    """For each byte of `outer`, the bits of `inner`'s positions holding it."""
    return {byte: _positions(inner, byte) for byte in set(outer)}


def _final_row(outer: bytes, inner: bytes, masks: dict[int, int], rows: list[bytes] | None) -> int:
    """Run Hyyro's recurrence of `outer` against `inner` (non-empty); the final row vector V
    (zero bits: where the LCS grows). With `rows`, append each prefix's growth bits as
    little-endian bytes (rows[r] for the first r bytes of `outer`)."""
    full = (1 << len(inner)) - 1
    size = (len(inner) + 7) // 8
    v = full
    for byte in outer:
        u = v & masks[byte]
        v = ((v + u) | (v - u)) & full
        if rows is not None:
            rows.append((~v & full).to_bytes(size, "little"))
    return v


def lcs_length(a: bytes, b: bytes) -> int:
    """The length of the longest common subsequence of `a` and `b`."""
    outer, inner = (a, b) if len(a) <= len(b) else (b, a)
    if not outer:
        return 0
    return len(inner) - _final_row(outer, inner, _masks(outer, inner), None).bit_count()


class LcsTable:
    """Redis' table L(i, j) (the LCS length of a[:i] and b[:j]) in a stored orientation:
    `outer` is the shorter string, and L'(r, c) is the LCS of outer[:r] and inner[:c]
    (L(i, j) = L'(i, j) if `outer_is_a`, else L'(j, i)). Row r keeps the bits c where
    L'(r, c + 1) = L'(r, c) + 1, so L'(r, c) is the popcount of its first c bits."""

    def __init__(self, a: bytes, b: bytes) -> None:
        self.outer_is_a = len(a) <= len(b)
        self.outer, self.inner = (a, b) if self.outer_is_a else (b, a)
        self.masks = _masks(self.outer, self.inner)
        self.rows: list[bytes] = [bytes((len(self.inner) + 7) // 8)]
        if self.outer:
            _final_row(self.outer, self.inner, self.masks, self.rows)

    def prefix(self, row: int, col: int) -> int:
        """L'(row, col)."""
        return (self.row_bits(row, col)).bit_count()

    def row_bits(self, row: int, col: int) -> int:
        """Row `row`'s growth bits below `col`, as an integer."""
        data = self.rows[row][: (col + 7) // 8]
        return int.from_bytes(data, "little") & ((1 << col) - 1)

    def grows(self, row: int, col: int) -> int:
        """L'(row, col + 1) - L'(row, col)."""
        return self.rows[row][col >> 3] >> (col & 7) & 1


class _Walker:
    """Redis' walk back through the table from its far corner, knowing the current cell
    (`cur`) and the one a row back (`back`, in the stored orientation) without counting: a
    step along a row reads two bits, a step to the previous row counts one prefix.

    On a mismatch Redis steps back in `a` if L(i-1, j) > L(i, j-1), else in `b`. Once it
    steps along a row (the cheap way) it keeps doing so up to the next column where the row
    grows or the bytes match (a mismatch there would step the other way), so `skip_run`
    jumps there at once: the walk costs O(len(shorter)) Python steps, not O(len1 + len2)."""

    def __init__(self, table: LcsTable) -> None:
        self.t = table
        self.row, self.col = len(table.outer), len(table.inner)
        self.cur = table.prefix(self.row, self.col)
        self.back = table.prefix(self.row - 1, self.col) if self.row else 0

    @property
    def ij(self) -> tuple[int, int]:
        """The position in Redis' terms: (i, j) with L(i, j) = `cur`."""
        return (self.row, self.col) if self.t.outer_is_a else (self.col, self.row)

    def step_col(self) -> None:
        self.col -= 1
        self.cur -= self.t.grows(self.row, self.col)
        self.back -= self.t.grows(self.row - 1, self.col)

    def step_row(self) -> None:
        self.row -= 1
        self.cur = self.back
        self.back = self.t.prefix(self.row - 1, self.col) if self.row > 0 else 0

    def step_both(self) -> None:
        self.step_col()
        self.step_row()

    def mismatch_step(self) -> None:
        """Redis' step on a mismatch, then the rest of a run along the row."""
        left = self.cur - self.t.grows(self.row, self.col - 1)  # L'(row, col - 1)
        a_first = self.back > left if self.t.outer_is_a else left > self.back
        if a_first != self.t.outer_is_a:
            self.step_col()
            self.skip_run()
        else:
            self.step_row()

    def skip_run(self) -> None:
        """Jump to the highest column at or below this one where the row grows or the bytes
        match (the row does not grow in between, so `cur` stands)."""
        match = self.t.masks[self.t.outer[self.row - 1]] & ((1 << self.col) - 1)
        stop = (self.t.row_bits(self.row, self.col) | match).bit_length()
        if stop != self.col:
            self.col = stop
            self.back = self.t.prefix(self.row - 1, stop)


Match = tuple[int, int, int, int]
"""A matching range: a's first and last index, b's first and last index."""


def walk(a: bytes, b: bytes, table: LcsTable, min_len: int) -> tuple[bytes, list[Match]]:
    """Redis' walk back: the LCS itself and the matching ranges (last first) of at least
    `min_len` bytes (0: all)."""
    out = bytearray()
    matches: list[Match] = []
    walker = _Walker(table)
    open_range: list[int] | None = None
    i, j = walker.ij
    while i > 0 and j > 0:
        if a[i - 1] == b[j - 1]:
            out.append(a[i - 1])
            if open_range is None:
                open_range = [i - 1, i - 1, j - 1, j - 1]
            else:  # the previous step matched at (i, j): the range grows backwards
                open_range[0], open_range[2] = i - 1, j - 1
            emit = i == 1 or j == 1
            walker.step_both()
        else:
            emit = open_range is not None
            walker.mismatch_step()
        if emit and open_range is not None:
            a0, a1, b0, b1 = open_range
            if min_len == 0 or a1 - a0 + 1 >= min_len:
                matches.append((a0, a1, b0, b1))
            open_range = None
        i, j = walker.ij
    out.reverse()
    return bytes(out), matches


def _match_reply(match: Match, with_len: bool) -> Reply:
    a0, a1, b0, b1 = match
    items: tuple[Reply, ...] = (
        Array((Integer(a0), Integer(a1))),
        Array((Integer(b0), Integer(b1))),
    )
    return Array((*items, Integer(a1 - a0 + 1)) if with_len else items)


def _strings(ctx: Ctx, keys: Sequence[bytes]) -> list[bytes]:
    values = []
    for key in keys:
        meta = ctx.db.lookup(key)
        if meta is not None and meta.type is not ValueType.STRING:
            raise fail(NOT_STRINGS)
        values.append(b"" if meta is None else meta.value)
    return values


def cmd_lcs(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common
    subsequence, its length (LEN), or (IDX) a map of its matching ranges, last first, and
    its length. Missing keys are empty strings. See the module docstring for the bounds."""
    a, b = _strings(ctx, args[:2])
    opts = _parse(args[2:])
    if (len(a) + 1) * (len(b) + 1) > MAX_CELLS:
        raise fail(TOO_MANY_CELLS)
    if opts.length:
        return Integer(lcs_length(a, b))
    common, matches = walk(a, b, LcsTable(a, b), opts.min_len)
    if not opts.idx:
        return Bulk(common)
    ranges = Array(tuple(_match_reply(m, opts.with_len) for m in matches))
    return Map(((Bulk(b"matches"), ranges), (Bulk(b"len"), Integer(len(common)))))
