"""The wire form of Raft messages: plain lists that msgpack packs compactly.

Positional lists, not maps, keep a heartbeat to a few bytes; the layout is versioned by
the transport's handshake, not here. `decode_message(encode_message(m)) == m` for every
message.
"""

from __future__ import annotations

from typing import Any

from cairn.raft.types import (
    LOCAL_MESSAGES,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

_TYPES = list(MessageType)
_TYPE_CODE = {t: i for i, t in enumerate(_TYPES)}
_ENTRY_TYPES = list(EntryType)
_ENTRY_TYPE_CODE = {t: i for i, t in enumerate(_ENTRY_TYPES)}


class WireFormatError(ValueError):
    """A peer sent something that is not a well-formed message."""


def encode_entry(e: Entry) -> list[Any]:
    """An entry as [term, index, type, data]."""
    return [e.term, e.index, _ENTRY_TYPE_CODE[e.type], e.data]


_U64 = 1 << 64
_I64 = 1 << 63


def _uint(value: Any, name: str) -> int:
    """`value` if it is an integer in [0, 2**64), else `WireFormatError` naming `name`."""
    if type(value) is not int or not 0 <= value < _U64:
        raise WireFormatError(f"{name} is not an unsigned 64-bit integer: {value!r:.40}")
    return value


def _int(value: Any, name: str) -> int:
    """`value` if it is an integer in [-2**63, 2**64), else `WireFormatError`."""
    if type(value) is not int or not -_I64 <= value < _U64:
        raise WireFormatError(f"{name} is not a 64-bit integer: {value!r:.40}")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise WireFormatError(f"{name} is not bytes")
    return value


def _code(value: Any, table: list[Any], name: str) -> Any:
    if type(value) is not int or not 0 <= value < len(table):
        raise WireFormatError(f"unknown {name} code {value!r:.40}")
    return table[value]


def decode_entry(obj: Any) -> Entry:
    """The inverse of `encode_entry`; `WireFormatError` on malformed input."""
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise WireFormatError("an entry is [term, index, type, data]")
    term, index, etype, data = obj
    return Entry(
        term=_uint(term, "entry term"),
        index=_uint(index, "entry index"),
        type=_code(etype, _ENTRY_TYPES, "entry type"),
        data=_bytes(data, "entry data"),
    )


def encode_conf_state(cs: ConfState) -> list[Any]:
    """A membership as five lists and a flag."""
    return [
        list(cs.voters),
        list(cs.learners),
        list(cs.voters_outgoing),
        list(cs.learners_next),
        cs.auto_leave,
    ]


def _ids(obj: Any, name: str) -> tuple[int, ...]:
    if not isinstance(obj, list | tuple):
        raise WireFormatError(f"{name} is not a list")
    return tuple(_uint(i, name) for i in obj)


def decode_conf_state(obj: Any) -> ConfState:
    """The inverse of `encode_conf_state`; `WireFormatError` on malformed input."""
    if not isinstance(obj, list | tuple) or len(obj) != 5:
        raise WireFormatError("a conf state is five fields")
    voters, learners, outgoing, learners_next, auto_leave = obj
    if not isinstance(auto_leave, bool):
        raise WireFormatError("auto_leave is not a boolean")
    return ConfState(
        voters=_ids(voters, "voters"),
        learners=_ids(learners, "learners"),
        voters_outgoing=_ids(outgoing, "voters_outgoing"),
        learners_next=_ids(learners_next, "learners_next"),
        auto_leave=auto_leave,
    )


def encode_snapshot(s: Snapshot) -> list[Any]:
    """A snapshot as [index, term, conf_state, data]."""
    m = s.metadata
    return [m.index, m.term, encode_conf_state(m.conf_state), s.data]


def decode_snapshot(obj: Any) -> Snapshot:
    """The inverse of `encode_snapshot`; `WireFormatError` on malformed input."""
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise WireFormatError("a snapshot is [index, term, conf_state, data]")
    index, term, cs, data = obj
    meta = SnapshotMetadata(
        index=_uint(index, "snapshot index"),
        term=_uint(term, "snapshot term"),
        conf_state=decode_conf_state(cs),
    )
    return Snapshot(data=_bytes(data, "snapshot data"), metadata=meta)


def encode_message(m: Message) -> list[Any]:
    """A message as a positional list."""
    return [
        _TYPE_CODE[m.type],
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        [encode_entry(e) for e in m.entries],
        m.commit,
        None if m.snapshot is None else encode_snapshot(m.snapshot),
        m.reject,
        m.reject_hint,
        m.hint_term,
        m.context,
        m.lease_tick,
    ]


def decode_message(obj: Any) -> Message:
    """The inverse of `encode_message`; raises `WireFormatError` on malformed input: a
    field of the wrong type or out of its range, an unknown message or entry type, a
    message type that never travels (`LOCAL_MESSAGES`)."""
    if not isinstance(obj, list | tuple) or len(obj) != 14:
        raise WireFormatError("a raft message is a list of 14 fields")
    t, to, frm, term, log_term, index, ents, commit, snap, reject, hint, hint_term, ctx, lt = obj
    mtype = _code(t, _TYPES, "message type")
    if mtype in LOCAL_MESSAGES:
        raise WireFormatError(f"{mtype.value} never travels between nodes")
    if not isinstance(ents, list | tuple) or not isinstance(reject, bool):
        raise WireFormatError("malformed raft message: entries or reject")
    return Message(
        type=mtype,
        to=_uint(to, "to"),
        frm=_uint(frm, "from"),
        term=_uint(term, "term"),
        log_term=_uint(log_term, "log_term"),
        index=_uint(index, "index"),
        entries=tuple(decode_entry(e) for e in ents),
        commit=_uint(commit, "commit"),
        snapshot=None if snap is None else decode_snapshot(snap),
        reject=reject,
        reject_hint=_int(hint, "reject_hint"),
        hint_term=_int(hint_term, "hint_term"),
        context=_bytes(ctx, "context"),
        lease_tick=_int(lt, "lease_tick"),
    )
