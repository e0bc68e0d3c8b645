"""Decoding a RESP2 reply back into a `Reply`: what a fanned-out command's parts need.

A command forwarded to another node comes back as the bytes that node would have sent
the client, which are relayed unchanged. The parts of a fanned-out command are merged
(`cairn.shard.routing.merge`) instead, so a part forwarded elsewhere is asked for in
RESP2 and decoded here. Only RESP2's five types exist; anything else, or trailing bytes,
is a `ReplyDecodeError` (the merge then answers an error rather than guess).
"""

from __future__ import annotations

from cairn.resp.reply import NULL, NULL_ARRAY, Array, Bulk, ErrorReply, Integer, Reply, SimpleString


class ReplyDecodeError(ValueError):
    """The bytes are not exactly one RESP2 reply."""


def decode_reply(data: bytes) -> Reply:
    """The one RESP2 reply `data` holds."""
    reply, end = _decode(data, 0)
    if end != len(data):
        raise ReplyDecodeError(f"{len(data) - end} bytes after the reply")
    return reply


def _line(data: bytes, at: int) -> tuple[bytes, int]:
    end = data.find(b"\r\n", at)
    if end < 0:
        raise ReplyDecodeError("a reply line has no CRLF")
    return data[at:end], end + 2


def _int(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise ReplyDecodeError(f"not an integer: {text!r}") from None


def _decode(data: bytes, at: int) -> tuple[Reply, int]:
    if at >= len(data):
        raise ReplyDecodeError("the reply is truncated")
    tag = data[at : at + 1]
    text, at = _line(data, at + 1)
    if tag == b"+":
        return SimpleString(text.decode("utf-8", "replace")), at
    if tag == b"-":
        return ErrorReply(text.decode("utf-8", "replace")), at
    if tag == b":":
        return Integer(_int(text)), at
    if tag == b"$":
        size = _int(text)
        if size < 0:
            return NULL, at
        if data[at + size : at + size + 2] != b"\r\n":
            raise ReplyDecodeError("a bulk string is truncated")
        return Bulk(data[at : at + size]), at + size + 2
    if tag == b"*":
        count = _int(text)
        if count < 0:
            return NULL_ARRAY, at
        items = []
        for _ in range(count):
            item, at = _decode(data, at)
            items.append(item)
        return Array(tuple(items)), at
    raise ReplyDecodeError(f"unknown reply type {tag!r}")
