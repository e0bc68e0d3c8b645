"""The coordinator's `Scratch` over the store's scratch executor
(`cairn.store.txn_scratch.run_scratch`): the loaded values in, the replies and the changed
keys' effects out, in the coordinator's types."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import Reply
from cairn.store.txn_scratch import run_scratch
from cairn.txn.protocol import Effect, Loaded

_SEED_SPAN = (1 << 40) - 1


def store_scratch(
    loaded: Sequence[Loaded], commands: Sequence[Sequence[bytes]], now_ms: int, start_ts: int
) -> tuple[list[Reply], list[Effect]]:
    """Run `commands` over `loaded` at `now_ms` on a real `StoreMachine` in memory; the
    randomness (SPOP, SRANDMEMBER ...) is seeded by the transaction's `start_ts`.
    ValueError (`ScratchError`) when a value does not load."""
    values = {v.key: (int(v.exists), v.pexpireat_ms, v.dump) for v in loaded}
    seed = start_ts % _SEED_SPAN + 1
    result = run_scratch(values, [list(c) for c in commands], now_ms, seed)
    effects = [
        Effect(key, kind, pexpireat, payload)
        for key, (kind, pexpireat, payload) in result.effects.items()
    ]
    return result.replies, effects
