"""Replies as bytes: every RESP3 reply type as msgpack, and back.

What the store keeps of a reply to answer it again later: the first reply of an
idempotent request id (`cairn.store.idempotency_table`, a retry may come over RESP2 or
RESP3, so nothing of the type is lost), the reply a script's effects carry
(`cairn.store.scripting.effects`) and the reply a cross-region transaction's coordinator
records (`cairn.txn.idempotent`). A reply is stored as a tree of plain values: a one- or
two-letter tag (the RESP3 type's first byte where it has one) and its contents.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    Array,
    Boolean,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    NestedMap,
    NullArray,
    NullBulk,
    Pairs,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)

__all__ = ["decode_reply", "encode_reply"]


def encode_reply(reply: Reply) -> bytes:
    """`reply` as msgpack, every RESP3 type kept (a retry may come over RESP2 or RESP3);
    TypeError for anything else."""
    return bytes(msgpack.packb(_tree(reply), use_bin_type=True))


def decode_reply(data: bytes) -> Reply:
    """The inverse of `encode_reply`."""
    return _untree(msgpack.unpackb(data, raw=False, strict_map_key=False))


def _tree(reply: Reply) -> list[object]:
    if isinstance(reply, SimpleString):
        return ["+", reply.value]
    if isinstance(reply, ErrorReply):
        return ["-", reply.message]
    if isinstance(reply, Integer):
        return [":", reply.value]
    if isinstance(reply, Bulk):
        return ["$", reply.value]
    if isinstance(reply, NullBulk):
        return ["_"]
    if isinstance(reply, NullArray):
        return ["*-"]
    if isinstance(reply, Double):
        return [",", reply.value]
    if isinstance(reply, Boolean):
        return ["#", reply.value]
    if isinstance(reply, Verbatim):
        return ["=", reply.text, reply.format]
    if isinstance(reply, Array | Set | Push):
        return [_ITEM_TAGS[type(reply)], [_tree(item) for item in reply.items]]
    if isinstance(reply, Map | Pairs | NestedMap):
        return [_PAIR_TAGS[type(reply)], [[_tree(k), _tree(v)] for k, v in reply.pairs]]
    raise TypeError(f"no stored form for a {type(reply).__name__} reply")


_ITEM_TAGS: dict[type, str] = {Array: "*", Set: "~", Push: ">"}
_PAIR_TAGS: dict[type, str] = {Map: "%", Pairs: "p", NestedMap: "n"}
_ITEM_TYPES = {tag: kind for kind, tag in _ITEM_TAGS.items()}
_PAIR_TYPES = {tag: kind for kind, tag in _PAIR_TAGS.items()}


def _untree(node: list[Any]) -> Reply:
    """A reply from its `_tree` (msgpack gives back lists of plain values)."""
    tag, rest = node[0], node[1:]
    simple = _SIMPLE.get(tag)
    if simple is not None:
        return simple(*rest)
    if tag in _ITEM_TYPES:
        return _ITEM_TYPES[tag](tuple(_untree(c) for c in rest[0]))  # type: ignore[no-any-return]
    pairs = tuple((_untree(k), _untree(v)) for k, v in rest[0])
    return _PAIR_TYPES[tag](pairs)  # type: ignore[no-any-return]


_SIMPLE: dict[str, Callable[..., Reply]] = {
    "+": SimpleString,
    "-": ErrorReply,
    ":": Integer,
    "$": Bulk,
    "_": lambda: NULL,
    "*-": lambda: NULL_ARRAY,
    ",": Double,
    "#": Boolean,
    "=": Verbatim,
}
