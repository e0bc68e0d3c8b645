"""`Ready`: everything the core asks the application to do, in one numbered batch."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.raft.types import Entry, HardState, Message, ReadState, Snapshot, SoftState


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the application, handled strictly in this order:

    1. persist: write `snapshot` (if any), append `entries` (truncating what they
       overwrite) and write `hard_state` (if any); fsync when `must_sync` is true;
    2. send `messages` — these may go out before or while persisting (for example a
       leader's appends to followers);
    3. send `persisted_messages` — only after step 1 is durable: they promise what was
       just persisted (a vote, an append acknowledgement);
    4. apply `committed_entries` to the state machine (and `snapshot` if any), and serve
       the `read_states` whose index is applied;
    5. call `RawNode.advance(ready)`.

    Pipelined, a driver calls `RawNode.advance_append_async(ready)` once the write of
    step 1 has started and may take the next Ready before it is durable; it then
    acknowledges durability with `RawNode.on_persist_ready(number)` (steps 3 wait for
    it) and the apply with `RawNode.advance_apply_to` (see `cairn.raft.rawnode`).

    `number` increases by one per Ready: it is what `on_persist_ready` acknowledges.
    Invariant: every committed entry handed out here is already in stable storage, in
    the write of an earlier Ready, or in `entries`.
    """

    number: int
    soft_state: SoftState | None
    hard_state: HardState | None
    read_states: tuple[ReadState, ...]
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    persisted_messages: tuple[Message, ...]
    must_sync: bool

    def is_empty(self) -> bool:
        """Whether the batch asks for nothing at all."""
        return not (
            self.soft_state
            or self.hard_state
            or self.read_states
            or self.entries
            or self.snapshot
            or self.committed_entries
            or self.messages
            or self.persisted_messages
        )
