"""The wire form of Raft messages: plain lists that msgpack packs compactly.

Positional lists, not maps, keep a heartbeat to a few bytes; the layout is versioned by
the transport's handshake, not here. `decode_message(encode_message(m)) == m` for every
message.
"""

from __future__ import annotations

from typing import Any

from cairn.raft.types import (
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


def decode_entry(obj: Any) -> Entry:
    """The inverse of `encode_entry`."""
    term, index, etype, data = obj
    return Entry(term=term, index=index, type=_ENTRY_TYPES[etype], data=bytes(data))


def encode_conf_state(cs: ConfState) -> list[Any]:
    """A membership as five lists and a flag."""
    return [
        list(cs.voters),
        list(cs.learners),
        list(cs.voters_outgoing),
        list(cs.learners_next),
        cs.auto_leave,
    ]


def decode_conf_state(obj: Any) -> ConfState:
    """The inverse of `encode_conf_state`."""
    voters, learners, outgoing, learners_next, auto_leave = obj
    return ConfState(
        voters=tuple(voters),
        learners=tuple(learners),
        voters_outgoing=tuple(outgoing),
        learners_next=tuple(learners_next),
        auto_leave=bool(auto_leave),
    )


def encode_snapshot(s: Snapshot) -> list[Any]:
    """A snapshot as [index, term, conf_state, data]."""
    m = s.metadata
    return [m.index, m.term, encode_conf_state(m.conf_state), s.data]


def decode_snapshot(obj: Any) -> Snapshot:
    """The inverse of `encode_snapshot`."""
    index, term, cs, data = obj
    meta = SnapshotMetadata(index=index, term=term, conf_state=decode_conf_state(cs))
    return Snapshot(data=bytes(data), metadata=meta)


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
    """The inverse of `encode_message`; raises `WireFormatError` on malformed input."""
    try:
        t, to, frm, term, log_term, index, ents, commit, snap, reject, hint, hint_term, ctx, lt = (
            obj
        )
        return Message(
            type=_TYPES[t],
            to=int(to),
            frm=int(frm),
            term=int(term),
            log_term=int(log_term),
            index=int(index),
            entries=tuple(decode_entry(e) for e in ents),
            commit=int(commit),
            snapshot=None if snap is None else decode_snapshot(snap),
            reject=bool(reject),
            reject_hint=int(hint),
            hint_term=int(hint_term),
            context=bytes(ctx),
            lease_tick=int(lt),
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise WireFormatError(f"malformed raft message: {exc}") from exc

