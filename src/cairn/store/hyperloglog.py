"""Redis 7.0's HyperLogLog representation, byte for byte, and its cardinality estimator.

A HyperLogLog is a plain string (GET returns it, SET of a value copied from Redis works)::

    "HYLL" | encoding (1 byte: 0 dense, 1 sparse) | 3 unused bytes
           | cached cardinality (8 bytes, little-endian; the top bit of the last byte set
             means "stale, recompute") | registers

16384 registers of 6 bits each. The dense encoding packs them LSB first into 12288 bytes
(register 0 in the low 6 bits of byte 0, register 1 in its top 2 bits and the low 4 of
byte 1, ...). The sparse encoding run-length codes them with three opcodes: ZERO
``00xxxxxx`` (1..64 zero registers), XZERO ``01xxxxxx yyyyyyyy`` (1..16384 zero
registers), VAL ``1vvvvvxx`` (1..4 registers of value 1..32). A new HLL is sparse; it is
promoted to dense when a register needs a value above 32 or when an update would grow the
sparse string past `SPARSE_MAX_BYTES` (Redis' `hll-sparse-max-bytes`, default 3000).

An element's register and value come from MurmurHash64A with Redis' seed: the low 14 bits
of the hash pick the register, and the value is one more than the number of trailing zero
bits of the remaining 50 (at most 51). The estimate is Otmar Ertl's improved estimator
("New cardinality estimation algorithms for HyperLogLog sketches", arXiv:1702.01284) over
the histogram of register values, computed in the same double-precision steps as Redis, so
the counts agree exactly. A sparse value whose opcodes do not cover exactly 16384
registers is corrupted (`CorruptedError`, Redis' INVALIDOBJ) wherever it is read whole.

Sparse updates follow Redis' algorithm step for step (which opcode is split, which neighbours
are merged, when the string is promoted), because the exact bytes depend on it. Everything
here works on the bytes directly: adding an element to a dense HLL touches two bytes; whole-
register work (counting, merging) unpacks the dense registers into four byte "lanes" with
`bytes.translate` and big-integer operations rather than Python loops (`lanes`).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

HEADER_SIZE = 16
REGISTERS = 16384
DENSE_BYTES = REGISTERS * 6 // 8
DENSE_SIZE = HEADER_SIZE + DENSE_BYTES
DENSE = 0
SPARSE = 1
SPARSE_MAX_BYTES = 3000
"""Redis' default `hll-sparse-max-bytes` (Cairn has no CONFIG SET for it)."""

MAGIC = b"HYLL"
SEED = 0xADC83B19
_STALE = 0x80
"""The "stale cache" bit in the last byte of the cached cardinality."""
_Q = 50
"""Hash bits left after the register index: register values are 1 .. _Q + 1."""
_VAL_MAX = 32
_VAL_MAX_RUN = 4
_ZERO_MAX_RUN = 64
_XZERO_MAX_RUN = 16384
_ALPHA_INF = 0.721347520444481703680
_M = 0xC6A4A7935BD1E995
_U64 = (1 << 64) - 1
_QWORDS = struct.Struct("<Q")
_LANE = REGISTERS // 4


class CorruptedError(Exception):
    """The sparse registers do not describe exactly 16384 registers (Redis' INVALIDOBJ)."""


# -- hashing ---------------------------------------------------------------------------


def murmur64a(data: bytes, seed: int = SEED) -> int:
    """MurmurHash64A of `data` as Redis computes it (endian-neutral, 64-bit)."""
    n = len(data)
    h = (seed ^ (n * _M)) & _U64
    whole = n - (n & 7)
    for (k,) in _QWORDS.iter_unpack(data[:whole]):
        k = (k * _M) & _U64
        k ^= k >> 47
        h ^= (k * _M) & _U64
        h = (h * _M) & _U64
    if n & 7:
        h = ((h ^ int.from_bytes(data[whole:], "little")) * _M) & _U64
    h ^= h >> 47
    h = (h * _M) & _U64
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple[int, int]:
    """(register index, value) that `element` proposes: the value is the length of the
    ``0...01`` run in the hash bits above the index (Redis' hllPatLen)."""
    h = murmur64a(element)
    rest = (h >> 14) | (1 << _Q)
    return h & (REGISTERS - 1), (rest & -rest).bit_length()


# -- the header ------------------------------------------------------------------------


def empty() -> bytes:
    """A new HLL as Redis creates it: sparse, every register zero (one XZERO of 16384), the
    cached cardinality 0 and valid (PFADD marks it stale as it stores the key)."""
    header = MAGIC + bytes([SPARSE, 0, 0, 0]) + bytes(8)
    return header + _xzero(REGISTERS)


def is_hll(value: bytes) -> bool:
    """Whether `value` passes Redis' isHLLObjectOrReply: the magic, a known encoding, and a
    dense value of exactly the dense size (a sparse one is only checked when read)."""
    if len(value) < HEADER_SIZE or value[:4] != MAGIC or value[4] > SPARSE:
        return False
    return value[4] == SPARSE or len(value) == DENSE_SIZE


def is_dense(value: bytes) -> bool:
    """Whether a valid HLL uses the dense encoding."""
    return value[4] == DENSE


def cached_cardinality(value: bytes) -> int | None:
    """The cardinality cached in the header, None when it is marked stale."""
    if value[15] & _STALE:
        return None
    return int.from_bytes(value[8:16], "little")


def _mark_stale(buf: bytearray) -> None:
    buf[15] |= _STALE


def with_stale_cache(value: bytes) -> bytes:
    """`value` with its cached cardinality marked stale (what Redis does to a changed HLL)."""
    buf = bytearray(value)
    _mark_stale(buf)
    return bytes(buf)


# -- dense registers ---------------------------------------------------------------------


def _dense_set(buf: bytearray, index: int, count: int) -> bool:
    """Raise register `index` of dense `buf` to `count`; whether it changed. (The byte after
    the last register reads as 0, like the NUL that ends every Redis string.)"""
    bit = index * 6
    pos = HEADER_SIZE + (bit >> 3)
    shift = bit & 7
    b0 = buf[pos]
    b1 = buf[pos + 1] if pos + 1 < len(buf) else 0
    if count <= ((b0 >> shift) | (b1 << (8 - shift))) & 63:
        return False
    buf[pos] = (b0 & ~(63 << shift) & 0xFF) | ((count << shift) & 0xFF)
    if shift > 2:
        buf[pos + 1] = (b1 & ~(63 >> (8 - shift)) & 0xFF) | (count >> (8 - shift))
    return True


def _table(fn: Callable[[int], int]) -> bytes:
    """A `bytes.translate` table applying `fn` to every byte value."""
    return bytes(fn(b) & 0xFF for b in range(256))


_LOW6 = _table(lambda b: b & 63)
_SHR2 = _table(lambda b: b >> 2)
_SHR4 = _table(lambda b: b >> 4)
_SHR6 = _table(lambda b: b >> 6)
_LOW2_SHL4 = _table(lambda b: (b & 3) << 4)
_LOW2_SHL6 = _table(lambda b: (b & 3) << 6)
_LOW4_SHL2 = _table(lambda b: (b & 15) << 2)
_LOW4_SHL4 = _table(lambda b: (b & 15) << 4)
_SHL2 = _table(lambda b: b << 2)


def _or(a: bytes, b: bytes) -> bytes:
    """Byte-wise OR of two equally long strings."""
    both = int.from_bytes(a, "little") | int.from_bytes(b, "little")
    return both.to_bytes(len(a), "little")


def _dense_lanes(registers: bytes) -> bytes:
    """The 16384 registers of a dense body, one byte each, in lane order (see `lanes`).
    Every 3 bytes hold 4 registers: the bytes at offsets 0, 1, 2 (mod 3) are sliced out
    and recombined with translation tables, all in C."""
    b0, b1, b2 = registers[0::3], registers[1::3], registers[2::3]
    return b"".join(
        (
            b0.translate(_LOW6),
            _or(b0.translate(_SHR6), b1.translate(_LOW4_SHL2)),
            _or(b1.translate(_SHR4), b2.translate(_LOW2_SHL4)),
            b2.translate(_SHR2),
        )
    )


def _pack_lanes(lanes_: bytes) -> bytes:
    """The dense body (12288 bytes) of registers given in lane order (values <= 63)."""
    r0, r1, r2, r3 = (lanes_[i * _LANE : (i + 1) * _LANE] for i in range(4))
    out = bytearray(DENSE_BYTES)
    out[0::3] = _or(r0, r1.translate(_LOW2_SHL6))
    out[1::3] = _or(r1.translate(_SHR2), r2.translate(_LOW4_SHL4))
    out[2::3] = _or(r2.translate(_SHR4), r3.translate(_SHL2))
    return bytes(out)


def _to_lanes(natural: bytes | bytearray) -> bytes:
    """Registers in index order, one byte each, rearranged in lane order."""
    return b"".join(bytes(natural[i::4]) for i in range(4))


def _from_lanes(lanes_: bytes) -> bytearray:
    """The inverse of `_to_lanes`."""
    natural = bytearray(REGISTERS)
    for i in range(4):
        natural[i::4] = lanes_[i * _LANE : (i + 1) * _LANE]
    return natural


# -- sparse registers --------------------------------------------------------------------


def _xzero(run: int) -> bytes:
    return bytes([0x40 | ((run - 1) >> 8), (run - 1) & 0xFF])


def _zeros(run: int) -> bytes:
    """One opcode for `run` zero registers: ZERO up to 64, XZERO beyond."""
    return _xzero(run) if run > _ZERO_MAX_RUN else bytes([run - 1])


def _val(value: int, run: int) -> int:
    return 0x80 | (value - 1) << 2 | (run - 1)


_VALUE_OF = bytes(((b >> 2) & 31) + 1 if b >= 0x80 else 0 for b in range(256))
"""The register value a one-byte opcode stands for (ZERO: 0; XZERO bytes: 0)."""
_RUN_OF = bytes(b + 1 if b < 0x40 else (b & 3) + 1 if b >= 0x80 else 0 for b in range(256))
"""The run length of a one-byte opcode (0 for an XZERO's first byte)."""


def _xzero_run(buf: bytes | bytearray, p: int) -> int:
    """The run of the XZERO at `p` (a missing second byte reads as 0, as the NUL that ends
    a Redis string)."""
    low = buf[p + 1] if p + 1 < len(buf) else 0
    return ((buf[p] & 0x3F) << 8 | low) + 1


_EXPANSION = [bytes([_VALUE_OF[b]]) * _RUN_OF[b] for b in range(256)]
"""The registers a one-byte opcode stands for, one byte each (b"" for an XZERO's byte)."""
_XZERO_BYTE = re.compile(rb"[\x40-\x7f]")
_MAX_SPARSE_BODY = 2 * REGISTERS
"""The longest body that can describe exactly 16384 registers (every opcode covers one)."""


def _xzero_heads(body: bytes) -> list[int]:
    """Where the XZERO opcodes of a sparse body start. A byte 01xxxxxx starts one unless
    it is the second byte of the XZERO just before it; such bytes are rare, so the regex
    finds them in C and only they are looked at."""
    heads: list[int] = []
    last = -2
    for match in _XZERO_BYTE.finditer(body):
        if match.start() - 1 != last:
            last = match.start()
            heads.append(last)
    return heads


def _exact_registers(body: bytes) -> bytes | None:
    """Every register of a sparse body in index order, one byte each, when the body
    describes exactly 16384 registers (None otherwise): the runs are totalled from the
    bytes first, so a corrupted body never expands beyond that, then expanded with a
    table lookup per opcode in C."""
    if len(body) > _MAX_SPARSE_BODY:
        return None
    heads = _xzero_heads(body)
    total = sum(body.translate(_RUN_OF))
    for h in heads:
        total += _xzero_run(body, h) - (_RUN_OF[body[h + 1]] if h + 1 < len(body) else 0)
    if total != REGISTERS:
        return None
    parts, start = [], 0
    for h in heads:
        parts.append(b"".join(map(_EXPANSION.__getitem__, body[start:h])))
        parts.append(bytes(_xzero_run(body, h)))
        start = h + 2
    parts.append(b"".join(map(_EXPANSION.__getitem__, body[start:])))
    return b"".join(parts)


def _sparse_registers(value: bytes) -> bytes:
    """The registers of a sparse value in index order, one byte each; CorruptedError unless
    its opcodes cover exactly 16384 registers (Redis 7.0.15 as shipped, with the
    CVE-2025-32023 fix, rejects any opcode running past the last register, so trailing
    opcodes are corrupt too)."""
    registers = _exact_registers(value[HEADER_SIZE:])
    if registers is None:
        raise CorruptedError
    return registers


def _sparse_histogram(value: bytes) -> list[int]:
    """Register-value histogram of a sparse value (Redis' hllSparseRegHisto)."""
    return _histogram(_sparse_registers(value))


def _to_dense(buf: bytes | bytearray) -> bytearray:
    """A sparse value converted to dense, keeping its header (magic, unused bytes and
    cached cardinality) but the encoding; CorruptedError if its registers do not add up."""
    body = _pack_lanes(_to_lanes(_sparse_registers(bytes(buf))))
    return bytearray(buf[:4]) + bytes([DENSE]) + buf[5:HEADER_SIZE] + body


@dataclass(slots=True)
class _Cursor:
    """Where a sparse walk may start: the opcode at `p` covers registers from `first`, and
    `prev` is the opcode before it (None: `p` is the first). A walk for a higher register
    can resume from the cursor a previous update left (PFMERGE sets registers in order)."""

    p: int = HEADER_SIZE
    first: int = 0
    prev: int | None = None


class _MustPromoteError(Exception):
    """The sparse update cannot be done in place: convert to dense and set there."""


def _sparse_set(buf: bytearray, index: int, count: int, cursor: _Cursor) -> tuple[bool, _Cursor]:
    """Raise register `index` of sparse `buf` to `count` in place, as Redis' hllSparseSet.

    Returns whether the register changed and a cursor for a later update of a higher
    register; raises `_MustPromoteError` when the value must become dense and CorruptedError when
    the walk runs off the end."""
    if count > _VAL_MAX:
        raise _MustPromoteError
    p, first, prev = cursor.p, cursor.first, cursor.prev
    end, span, size = len(buf), 0, 1
    back_first, back_prev = 0, prev
    while p < end:
        b = buf[p]
        span, size = _RUN_OF[b], 1
        if not span:
            span, size = _xzero_run(buf, p), 2
        if index < first + span:
            break
        back_first, back_prev, prev = first, prev, p
        p += size
        first += span
    if p >= end:
        raise CorruptedError
    # Resume later at the opcode before this one: the update changes nothing before it.
    resume = (
        _Cursor(prev, back_first, back_prev) if p != cursor.p and prev is not None else _Cursor()
    )
    val = _VALUE_OF[buf[p]]
    if val >= count:
        return False, resume
    if span == 1 and size == 1:
        buf[p] = _val(count, 1)
    else:
        _split(buf, p, index - first, span, val, count, size)
    _merge_vals(buf, HEADER_SIZE if prev is None else prev)
    _mark_stale(buf)
    return True, resume


def _split(buf: bytearray, p: int, offset: int, span: int, val: int, count: int, size: int) -> None:
    """Replace the opcode at `p` (a run of `span` registers of value `val`, `size` bytes)
    by the runs before, at and after register `offset` of it, the middle one set to
    `count`; `_MustPromoteError` if that grows the string past `SPARSE_MAX_BYTES`."""
    after = span - 1 - offset
    if val:
        runs = [_val(val, offset)] if offset else []
        runs.append(_val(count, 1))
        seq = bytes([*runs, _val(val, after)] if after else runs)
    else:
        seq = (
            (_zeros(offset) if offset else b"")
            + bytes([_val(count, 1)])
            + (_zeros(after) if after else b"")
        )
    delta = len(seq) - size
    if delta > 0 and len(buf) + delta > SPARSE_MAX_BYTES:
        raise _MustPromoteError
    if p + size < len(buf):
        buf[p : p + size] = seq
    else:
        # The last opcode: Redis writes the new sequence at `p` and moves the end by
        # `delta` (the same thing, unless a truncated XZERO ended the string).
        new_len = len(buf) + delta
        buf[p:] = seq
        del buf[new_len:]


def _merge_vals(buf: bytearray, p: int) -> None:
    """Redis' step 4: from `p`, over at most 5 opcodes, fuse adjacent VALs of the same
    value whose runs fit in one VAL (a fused pair is tried again with its right side)."""
    for _ in range(5):
        if p >= len(buf):
            return
        b = buf[p]
        if b < 0x80:
            p += 2 if b >= 0x40 else 1
            continue
        nxt = buf[p + 1] if p + 1 < len(buf) else 0
        if nxt >= 0x80 and (b >> 2) == (nxt >> 2):
            run = (b & 3) + (nxt & 3) + 2
            if run <= _VAL_MAX_RUN:
                buf[p : p + 2] = bytes([(b & 0xFC) | (run - 1)])
                continue
        p += 1


# -- adding elements --------------------------------------------------------------------


def add(value: bytes, elements: Iterable[bytes]) -> bytes | None:
    """`value` with `elements` added (PFADD's work), or None when no register changed.

    A changed value has its cached cardinality marked stale; a sparse one may come back
    dense. CorruptedError for a sparse value whose registers cannot be walked."""
    buf = bytearray(value)
    changed = False
    for element in elements:
        index, count = pattern(element)
        if buf[4] == DENSE:
            changed = _dense_set(buf, index, count) or changed
            continue
        try:
            changed = _sparse_set(buf, index, count, _Cursor())[0] or changed
        except _MustPromoteError:
            buf = _to_dense(buf)
            _dense_set(buf, index, count)
            changed = True
    if not changed:
        return None
    _mark_stale(buf)
    return bytes(buf)


# -- counting and merging ------------------------------------------------------------------


def lanes(value: bytes) -> bytes:
    """The registers of a valid HLL, one byte each, in "lane" order: registers 0, 4, 8, ...,
    then 1, 5, 9, ..., then 2, 6, ..., then 3, 7, ... (the order the dense packing yields
    without a Python loop). Lane strings of several HLLs combine with `union`.
    CorruptedError as Redis' hllMerge."""
    if value[4] == DENSE:
        return _dense_lanes(value[HEADER_SIZE:])
    return _to_lanes(_sparse_registers(value))


_HIGH = int.from_bytes(b"\x80" * REGISTERS, "little")


def union(a: bytes, b: bytes) -> bytes:
    """Register-wise maximum of two lane strings (values below 128): per byte, a + 128 - b
    keeps its top bit exactly when a >= b, which selects a or b without a Python loop."""
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    a_wins = ((((x | _HIGH) - y) & _HIGH) >> 7) * 0xFF
    return ((x & a_wins) | (y & ~a_wins)).to_bytes(REGISTERS, "little")


def empty_lanes() -> bytes:
    """The lanes of an empty HLL."""
    return bytes(REGISTERS)


_BYTES = [bytes([v]) for v in range(64)]


def _histogram(registers: bytes) -> list[int]:
    """The histogram of register values (one byte per register, in any order): one C-level
    count per value present, lowest values first, until every register is accounted for."""
    histogram = [0] * 64
    left = REGISTERS
    for v in range(64):
        if not left:
            break
        histogram[v] = found = registers.count(_BYTES[v])
        left -= found
    return histogram


def cardinality(value: bytes) -> int:
    """The estimate for a valid HLL, ignoring the cache (Redis' hllCount);
    CorruptedError for a sparse value not covering exactly 16384 registers."""
    if value[4] == DENSE:
        return estimate(_histogram(_dense_lanes(value[HEADER_SIZE:])))
    return estimate(_sparse_histogram(value))


def lanes_cardinality(lanes_: bytes) -> int:
    """The estimate for registers given as lanes (PFCOUNT of several keys)."""
    return estimate(_histogram(lanes_))


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        before = z
        z += x * y
        y += y
        if before == z:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        before = z
        y *= 0.5
        z -= (1.0 - x) * (1.0 - x) * y
        if before == z:
            return z / 3


def estimate(histogram: list[int]) -> int:
    """Ertl's improved estimator over the histogram of register values (64 entries), in
    Redis' order of double operations, rounded half away from zero like llroundl."""
    m = float(REGISTERS)
    z = m * _tau((m - histogram[_Q + 1]) / m)
    for j in range(_Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    e = _ALPHA_INF * m * m / z
    whole = math.floor(e)
    return int(whole) + (e - whole >= 0.5)


def merge_into(dest: bytes | None, merged: bytes, dense: bool) -> bytes:
    """PFMERGE's result: `dest` (None: a new HLL) with every register raised to `merged`
    (lanes that already include `dest`'s own registers), cache marked stale.

    Dense when `dense` (some source was dense) or when `dest` is; otherwise registers are
    set one by one in index order as Redis does, which may promote midway (the result is
    then the dense packing of `merged`, under `dest`'s header)."""
    base = bytearray(empty() if dest is None else dest)
    if not dense and base[4] == SPARSE:
        try:
            if base[HEADER_SIZE:] == _xzero(REGISTERS):
                base[HEADER_SIZE:] = _fresh_sparse(_from_lanes(merged))
            else:
                _merge_sparse(base, _from_lanes(merged))
            _mark_stale(base)
            return bytes(base)
        except _MustPromoteError:
            pass
    header = base[:4] + bytes([DENSE]) + base[5:HEADER_SIZE]
    _mark_stale(header)
    return bytes(header) + _pack_lanes(merged)


def _merge_sparse(buf: bytearray, natural: bytes | bytearray) -> None:
    """Raise the registers of sparse `buf` to `natural` (never lower), one register at a
    time in index order as Redis does; only registers that rise are visited (Redis'
    visits to the others change nothing)."""
    old = int.from_bytes(_sparse_registers(bytes(buf)), "big")
    new = int.from_bytes(natural, "big")
    rising = ((((old | _HIGH) - new) & _HIGH) ^ _HIGH).to_bytes(REGISTERS, "big")
    cursor = _Cursor()
    for match in _NONZERO.finditer(rising):
        index = match.start()
        cursor = _sparse_set(buf, index, natural[index], cursor)[1]


_NONZERO = re.compile(rb"[^\x00]")
_VALS = re.compile(rb"([^\x00])\1{0,3}")
"""Up to 4 equal nonzero registers: the VAL opcodes of a sparse HLL built by setting
registers in index order."""
_ABOVE_VAL_MAX = re.compile(rb"[\x21-\xff]")


def _fresh_sparse(natural: bytes | bytearray) -> bytes:
    """The sparse body `_merge_sparse` builds from an empty HLL (a single XZERO), without
    its splits and fuses: setting registers in index order always cuts the trailing zero
    run, and fuses a register with the VAL just before it when they are adjacent, equal
    and that VAL runs fewer than 4 registers. The size is followed through every step,
    because Redis promotes (`_MustPromoteError`) as soon as a split, before its fuse, would
    pass `SPARSE_MAX_BYTES`, or when a register exceeds 32."""
    if _ABOVE_VAL_MAX.search(natural):
        raise _MustPromoteError
    size, tail = HEADER_SIZE + 2, 0
    body = []
    zb, last = _ZERO_BYTES, REGISTERS - 1
    for match in _VALS.finditer(natural):
        start, stop = match.span()
        if start > tail:
            body.append(_zeros(start - tail))
        # The token's first register splits the zero run [tail, 16384) around it ...
        size += zb[start - tail] + 1 + zb[last - start] - zb[REGISTERS - tail]
        if size > SPARSE_MAX_BYTES:
            raise _MustPromoteError
        # ... and each further one splits off one more register, then fuses with it.
        for index in range(start + 1, stop):
            grow = 1 + zb[last - index] - zb[REGISTERS - index]
            if grow > 0 and size + grow > SPARSE_MAX_BYTES:
                raise _MustPromoteError
            size += grow - 1
        body.append(_VAL_BYTES[natural[start]][stop - start])
        tail = stop
    if tail < REGISTERS:
        body.append(_zeros(REGISTERS - tail))
    return b"".join(body)


_ZERO_BYTES = bytes([0] + [1] * _ZERO_MAX_RUN + [2] * (REGISTERS - _ZERO_MAX_RUN))
"""The size of the opcode for a run of n zero registers, by n (0: no run)."""
_VAL_BYTES = [[bytes([_val(v, run)]) if v and run else b"" for run in range(5)] for v in range(33)]
"""The VAL opcode for value v and run, by [v][run]."""
