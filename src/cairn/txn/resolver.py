"""Resolving a lock another transaction left on a key (TiKV's lock resolution), pure.

A command that meets a lock is answered `-LOCKED <start_ts> <ttl> <primary> <key>` by the
store without running. The lock's transaction decides its own fate at its primary key, so
the resolver asks there (`cairn.txn.status`, which also rolls the transaction back when
its primary's lock has expired) and makes the locked key follow:

- committed at `commit_ts`: `cairn.txn.commit` of the key (a coordinator that died after
  committing its primary is rolled forward by its readers);
- rolled back: `cairn.txn.rollback` of the key (one that died before is rolled back);
- alive: nothing to do but wait, `min(ttl, backoff)`.

Then the caller runs its command again (until its own deadline). Every step that fails
to reach its region just ends the resolution: the caller's retry meets the lock again.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from cairn.resp.reply import Reply
from cairn.txn.coordinator import TxnIO, TxnSettings, backoff
from cairn.txn.protocol import (
    Conflict,
    Status,
    commit_argv,
    read_status,
    rollback_argv,
    status_argv,
)


class Resolver:
    """Clears the locks commands run into (one per node; stateless between locks)."""

    def __init__(self, io: TxnIO, settings: TxnSettings, rng: Random) -> None:
        self.io = io
        self.settings = settings
        self.rng = rng
        self.resolved = 0
        """Locks rolled forward or back by this resolver (INFO, tests)."""

    def resolve(self, conflict: Conflict, attempt: int, then: Callable[[], None]) -> None:
        """Settle `conflict`'s key if its transaction has ended (or its lock expired), or
        wait a little while it runs; then call `then` (exactly once)."""
        pause = backoff(self.rng, self.settings, attempt)

        def after_status(reply: Reply) -> None:
            status = read_status(reply)
            if not isinstance(status, Status):
                self.io.later(pause, then)
            elif status.word == b"committed":
                argv = commit_argv(conflict.start_ts, status.number, [conflict.key], False)
                self.io.send(argv, settled)
            elif status.word == b"rolledback":
                argv = rollback_argv(conflict.start_ts, [conflict.key], False)
                self.io.send(argv, settled)
            else:  # alive: its coordinator is at work
                self.io.later(min(pause, max(status.number, 1) / 1000), then)

        def settled(reply: Reply) -> None:
            if isinstance(read_status(reply), Status):
                self.resolved += 1
                then()
            else:
                self.io.later(pause, then)

        self.io.send(status_argv(conflict.primary, conflict.start_ts), after_status)
