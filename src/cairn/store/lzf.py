"""LZF as Redis uses it: liblzf's compressor (HLOG 16, VERY_FAST), reproduced choice for
choice so a compressed string has exactly Redis' bytes, and a bounds-checked decompressor
for untrusted input. Moved out of `cairn.store.rdb` (which re-exports both). Pure: no I/O.

`BadPayloadError` lives here, the lowest of the serialization modules (`lzf`, `listpack`,
`rdb`, `rdb_stream`), so each of them raises the one error RESTORE turns into Redis'
"Bad data format".
"""

from __future__ import annotations


class BadPayloadError(ValueError):
    """A payload that is not a well-formed serialized value."""


def _lzf_slot(hval: int) -> int:
    return ((hval >> 8) - hval * 5) & 0xFFFF


def lzf_compress(data: bytes, out_len: int) -> bytes | None:
    """liblzf's lzf_compress as Redis builds it (HLOG 16, VERY_FAST): the compressed form
    if it fits in `out_len` bytes, else None. Same choices, same bytes."""
    n = len(data)
    if n < 3 or not out_len:
        return None
    htab: dict[int, int] = {}
    out = bytearray(out_len + 8)
    op, ip, lit = 1, 0, 0
    hval = data[0] << 8 | data[1]
    limit = n - 2
    while ip < limit:
        hval = ((hval << 8) | data[ip + 2]) & 0xFFFFFFFF
        slot = ((hval >> 8) - hval * 5) & 0xFFFF  # _lzf_slot, inlined: the hot loop
        ref = htab.get(slot)
        htab[slot] = ip
        if (
            ref is not None
            and ip - ref - 1 < 8192
            and ref > 0
            and data[ref : ref + 3] == data[ip : ip + 3]
        ):
            length = 2
            maxlen = min(n - ip - length, 264)
            if op - (not lit) + 4 >= out_len:
                return None
            out[op - lit - 1] = (lit - 1) & 0xFF
            if not lit:
                op -= 1
            length = _match_length(data, ref, ip, maxlen)
            off = ip - ref - 1
            length -= 2
            ip += 1
            if length < 7:
                out[op] = (off >> 8) + (length << 5)
                op += 1
            else:
                out[op] = (off >> 8) + (7 << 5)
                out[op + 1] = length - 7
                op += 2
            out[op] = off & 0xFF
            op += 2
            lit = 0
            ip += length + 1
            if ip >= limit:
                break
            ip -= 2
            hval = data[ip] << 8 | data[ip + 1]
            for _ in range(2):
                hval = ((hval << 8) | data[ip + 2]) & 0xFFFFFFFF
                htab[_lzf_slot(hval)] = ip
                ip += 1
        else:
            if op >= out_len:
                return None
            lit += 1
            out[op] = data[ip]
            op += 1
            ip += 1
            if lit == 32:
                out[op - lit - 1] = lit - 1
                lit = 0
                op += 1
    if op + 3 > out_len:
        return None
    while ip < n:
        lit += 1
        out[op] = data[ip]
        op += 1
        ip += 1
        if lit == 32:
            out[op - lit - 1] = lit - 1
            lit = 0
            op += 1
    out[op - lit - 1] = (lit - 1) & 0xFF
    if not lit:
        op -= 1
    return bytes(out[:op])


def _match_length(data: bytes, ref: int, ip: int, maxlen: int) -> int:
    """lzf_compress' match loop (its unrolled first 16 steps included, which may run one
    past `maxlen`): the index of the first unmatched byte."""
    length = 2
    if maxlen > 16:
        for _ in range(16):
            length += 1
            if data[ref + length] != data[ip + length]:
                return length
    while True:
        length += 1
        if not (length < maxlen and data[ref + length] == data[ip + length]):
            return length


def lzf_decompress(data: bytes, out_len: int) -> bytes:
    """The `out_len` bytes LZF `data` expands to; `BadPayloadError` unless exactly that many."""
    out = bytearray()
    ip, n = 0, len(data)
    while ip < n:
        ctrl = data[ip]
        ip += 1
        if ctrl < 32:
            count = ctrl + 1
            if ip + count > n or len(out) + count > out_len:
                raise BadPayloadError("lzf literal overrun")
            out += data[ip : ip + count]
            ip += count
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= n:
                raise BadPayloadError("lzf truncated")
            length += data[ip]
            ip += 1
        if ip >= n:
            raise BadPayloadError("lzf truncated")
        ref = len(out) - ((ctrl & 0x1F) << 8) - 1 - data[ip]
        ip += 1
        length += 2
        if ref < 0 or len(out) + length > out_len:
            raise BadPayloadError("lzf reference out of range")
        for i in range(length):
            out.append(out[ref + i])
    if len(out) != out_len:
        raise BadPayloadError("lzf length mismatch")
    return bytes(out)
