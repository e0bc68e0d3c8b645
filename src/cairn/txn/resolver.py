"""Resolving a lock another transaction left on a key (TiKV's lock resolution), pure.

A command that meets a lock is answered `-LOCKED <start_ts> <ttl> <primary> <key>` by the
store without running. The lock's transaction decides its own fate at its primary key, so
the resolver asks there (`cairn.txn.status`, which also rolls the transaction back when
its primary's lock has expired before it was prewritten) and makes the locked key follow:

- committed at `commit_ts`: `cairn.txn.commit` of the key (a coordinator that died after
  its commit point is rolled forward by its readers);
- rolled back: `cairn.txn.rollback` of the key (one that died before is rolled back);
- async (the primary is prewritten for an async commit and undecided): its fate is in
  its secondaries, checked at once, without waiting for the ttl
  (`cairn.txn.check_secondaries`, one entry per region, in parallel; each rolls back a
  lock it finds not yet prewritten, so that transaction can no longer commit): all
  prewritten, the transaction is committed: the primary is committed (its status
  written) and the key rolled forward; anything else, it never will be: the primary is
  rolled back first (writing the rolled-back status, so no late prewrite or commit can
  succeed), then the key. Either decision is taken by ONE entry at the primary, which
  refuses the other once made (a commit finding the primary rolled back answers
  `rolledback`, a rollback finding it committed answers `committed`): the key follows
  whatever that entry says;
- alive: nothing to do but wait, `min(ttl, backoff)`.

Then the caller runs its command again (until its own deadline). Every step that fails
to reach its region just ends the resolution: the caller's retry meets the lock again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random

from cairn.resp.reply import Reply
from cairn.txn.coordinator import TxnIO, TxnSettings, backoff
from cairn.txn.protocol import (
    AsyncPrimary,
    Conflict,
    Failed,
    Status,
    check_secondaries_argv,
    commit_argv,
    read_check,
    read_status,
    read_txn_status,
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
        self.checked = 0
        """Async-commit transactions decided by checking their secondaries (tests)."""

    def resolve(self, conflict: Conflict, attempt: int, then: Callable[[], None]) -> None:
        """Settle `conflict`'s key if its transaction has ended (or its lock expired, or
        its async commit can be decided), or wait a little while it runs; then call
        `then` (exactly once)."""
        pause = backoff(self.rng, self.settings, attempt)

        def after_status(reply: Reply) -> None:
            status = read_txn_status(reply)
            if isinstance(status, AsyncPrimary):
                self._check(conflict, status.secondaries, pause, then)
            elif not isinstance(status, Status):
                self.io.later(pause, then)
            elif status.word in (b"committed", b"rolledback"):
                self._follow(conflict, status, pause, then)
            else:  # alive: its coordinator is at work
                self.io.later(min(pause, max(status.number, 1) / 1000), then)

        self.io.send(status_argv(conflict.primary, conflict.start_ts), after_status)

    def _follow(
        self, conflict: Conflict, status: Status, pause: float, then: Callable[[], None]
    ) -> None:
        """Make the locked key follow its transaction's decided `status`."""
        if status.word == b"committed":
            argv = commit_argv(conflict.start_ts, status.number, [conflict.key], False)
        else:
            argv = rollback_argv(conflict.start_ts, [conflict.key], False)

        def settled(reply: Reply) -> None:
            if isinstance(read_status(reply), Status):
                self.resolved += 1
                then()
            else:
                self.io.later(pause, then)

        self.io.send(argv, settled)

    def _check(
        self,
        conflict: Conflict,
        secondaries: Sequence[bytes],
        pause: float,
        then: Callable[[], None],
    ) -> None:
        """Check an undecided async commit's secondaries, then decide it at its primary."""
        groups = self.io.group(secondaries) if secondaries else []
        if groups is None:  # a key with no known region: try again later
            self.io.later(pause, then)
            return
        left = [len(groups)]
        verdict = {"all": True, "failed": False}

        def answered(count: int) -> Callable[[Reply], None]:
            def read(reply: Reply) -> None:
                states = read_check(reply, count)
                if isinstance(states, Failed):
                    verdict["failed"] = True
                elif any(state != b"prewritten" for state in states):
                    verdict["all"] = False
                left[0] -= 1
                if left[0] == 0:
                    decided()

            return read

        def decided() -> None:
            if not verdict["all"]:  # one not prewritten is enough: it never will be
                self._decide(conflict, False, pause, then)
            elif verdict["failed"]:
                self.io.later(pause, then)
            else:
                self._decide(conflict, True, pause, then)

        if not groups:
            decided()
        for group in groups:
            self.io.send(check_secondaries_argv(conflict.start_ts, group), answered(len(group)))

    def _decide(
        self, conflict: Conflict, commit: bool, pause: float, then: Callable[[], None]
    ) -> None:
        """Commit (`commit`) or roll back the primary; the key follows what it answers."""
        start_ts, primary = conflict.start_ts, conflict.primary
        if commit:  # an async commit records its start_ts as its commit_ts
            argv = commit_argv(start_ts, start_ts, [primary], True)
        else:
            argv = rollback_argv(start_ts, [primary], True)

        def at_primary(reply: Reply) -> None:
            status = read_status(reply)
            if not isinstance(status, Status):
                self.io.later(pause, then)
                return
            self.checked += 1
            if status.word == b"ok":
                outcome = Status(b"committed", start_ts) if commit else Status(b"rolledback")
            elif status.word == b"committed":  # a rollback found it committed
                outcome = status
            else:  # `rolledback`: a commit found it rolled back
                outcome = Status(b"rolledback")
            if conflict.key == primary:
                self.resolved += 1
                then()
            else:
                self._follow(conflict, outcome, pause, then)

        self.io.send(argv, at_primary)
