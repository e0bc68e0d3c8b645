"""The coordinator of one cross-region transaction: a step machine, pure.

Theory of operation (docs/transactions.md; Percolator with pessimistic locks, as TiKV):

1. `start_ts` from the timestamp oracle; the keys grouped by region (`TxnIO.group`);
2. `cairn.txn.lock` in every region at once: each key is locked and its value read (a
   watched key's fingerprint checked first); the primary is the transaction's first key;
3. the queued commands run on a scratch machine loaded with those values (`Scratch`),
   at the time `start_ts` stands for: their replies, and the effect on every changed key;
4. `cairn.txn.prewrite` of the effects into the locks, in every region with changes at
   once (a transaction that changed nothing rolls its locks back and answers);
5. `commit_ts` from the oracle (asked while the prewrites run: the store keeps one
   version per key, so nothing reads at a timestamp and the commit timestamp only has to
   follow `start_ts`); `cairn.txn.commit` in the primary's region: that one Raft entry is
   the transaction's commit point; the client is answered;
6. the other regions are committed in the background (a reader that meets one of their
   locks first rolls it forward itself: `cairn.txn.resolver`).

Async commit (TiKV's, adapted; docs/transactions.md, "Async commit") replaces 4-6 for an
untagged transaction locking at most `TxnSettings.async_max_keys` keys of at most
`async_max_key_bytes` bytes: every locked key is prewritten (an unchanged one with an
explicit marker), the primary's lock listing the other keys; once every prewrite has
succeeded the transaction is committed (no rollback can be decided at its primary any
more), so the client is answered at once, with no commit timestamp and no primary-commit
round, and the primary then the other regions are committed in the background. A reader
meeting its locks decides it from the secondaries (`Resolver`). A prewrite that fails,
maybe only in appearance, makes the coordinator roll back the primary first: `committed`
(a reader committed the attempt) is then the answer.

Conflicts never wait while holding locks: a key locked by another transaction, a lock
lost to a resolver, a region that could not be reached make the coordinator roll back
every lock it took, back off (randomised, through the injected random source), and start
again with a new `start_ts`, until the request's deadline (then `-TRYAGAIN`); the lock met
is resolved first (`Resolver`: rolled forward if its transaction committed, back if it
expired, waited for a little while it is alive). A watched
key that changed aborts (the null array, as EXEC). A primary commit whose outcome cannot
be known is retried (it is idempotent) and answered `-UNCERTAIN` after the deadline.

Everything the coordinator does to the world goes through `TxnIO` (route and run an
internal command, group keys by region, schedule, read the monotonic clock) and a
`TimestampSource`: the runtime drives it with the node's own routing; the tests with real
`StoreMachine`s standing for regions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Protocol

from cairn.resp.reply import NULL_ARRAY, Array, ErrorReply, Reply
from cairn.store import CommandSpec, classify
from cairn.txn.idempotent import RequestTag
from cairn.txn.protocol import (
    KIND_UNCHANGED,
    Conflict,
    Effect,
    Loaded,
    Status,
    commit_argv,
    lock_argv,
    physical_ms,
    prewrite_argv,
    read_lock,
    read_status,
    rollback_argv,
)

TRYAGAIN = ErrorReply(
    "TRYAGAIN the transaction met conflicting transactions until its deadline, retry later"
)
UNCERTAIN = ErrorReply(
    "UNCERTAIN the transaction may or may not have been committed (its commit timed out)"
)
KEYLESS = ErrorReply(
    "ERR a transaction over several regions cannot run a command that names no key"
)
TOO_LARGE = ErrorReply(
    "ERR transaction too large: the values it reads in one region pass "
    "limits.max_entry_bytes"
)
CHANGES_TOO_LARGE = ErrorReply(
    "ERR transaction too large: its changes to one region pass limits.max_entry_bytes"
)

Done = Callable[[Reply], None]
TimestampCallback = Callable[[int | ErrorReply], None]


class TimestampSource(Protocol):
    """The timestamp oracle: `get` calls back once with a fresh timestamp (strictly
    greater than every one handed out before) or an `ErrorReply`."""

    def get(self, callback: TimestampCallback) -> None: ...


class TxnIO(Protocol):
    """What the coordinator and the resolver need from the node."""

    def send(self, argv: list[bytes], done: Done) -> None:
        """Route the internal command `argv` by its keys and run it; `done` gets its reply
        (an `ErrorReply` when it could not run: CROSSSLOT, TRYAGAIN, UNCERTAIN ...)."""

    def group(self, keys: Sequence[bytes]) -> list[list[bytes]] | None:
        """`keys` grouped by the region holding them (each group in the keys' order, the
        groups in the order of their first key); None: some key has no known region."""

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay_s` seconds."""

    def now(self) -> float:
        """A monotonic clock, in seconds (deadlines)."""


class Scratch(Protocol):
    """Run the queued commands over the loaded values, as EXEC would, at `now_ms` (the
    randomness seeded by `start_ts`): each command's reply, and the effect of every key
    whose value changed (`cairn.txn.scratch.store_scratch`)."""

    def __call__(
        self,
        loaded: Sequence[Loaded],
        commands: Sequence[Sequence[bytes]],
        now_ms: int,
        start_ts: int,
    ) -> tuple[list[Reply], list[Effect]]: ...


@dataclass(frozen=True, slots=True)
class TxnSettings:
    """The knobs of cross-region transactions (`txn_*` in the node's config)."""

    lock_ttl_ms: int = 3000
    """How long a lock protects an unfinished transaction before others may resolve it."""
    max_bytes: int = 16 << 20
    """The most bytes of values one transaction may read in one region, and of changes it
    may prewrite in one region (each is one Raft entry: `limits.max_entry_bytes`)."""
    backoff_base_s: float = 0.002
    backoff_max_s: float = 0.1
    commit_retry_s: float = 0.02
    """The pause before sending again a commit that failed to reach its region."""
    async_max_keys: int = 256
    """A writing transaction locking at most this many keys commits asynchronously
    (`limits.async_commit_max_keys`; 0: never)."""
    async_max_key_bytes: int = 4096
    """... and whose keys total at most this many bytes (they are listed in the primary's
    lock: `limits.async_commit_max_key_bytes`)."""
    plants: frozenset[str] = frozenset()
    """Planted bugs (tests only; `PLANTS`): empty in every real node."""


SECONDARIES_FIRST = "txn-secondaries-first"
"""Planted bug: the secondaries are committed before the commit point. Two-phase: before
the primary, so a coordinator that dies in between leaves them committed while its
primary is then rolled back. Async commit: each secondary region as soon as its own
prewrite answered, before every prewrite has, so a coordinator that dies then leaves
them committed while the check of its secondaries (finding those locks gone) rolls the
transaction back."""
PLANTS = frozenset({SECONDARIES_FIRST})


def backoff(rng: Random, settings: TxnSettings, attempt: int) -> float:
    """Full-jitter exponential backoff: a random pause in [base, min(max, base * 2^n)]."""
    cap = min(settings.backoff_max_s, settings.backoff_base_s * (1 << min(attempt, 20)))
    return settings.backoff_base_s + rng.random() * (cap - settings.backoff_base_s)


def unsupported(commands: Sequence[Sequence[bytes]]) -> ErrorReply | None:
    """Why the commands cannot run as a cross-region transaction (None: they can): SORT
    reading other keys through BY or GET patterns (unlocked keys). A script can: on the
    scratch machine it may use only its declared keys (`cairn.store.scripting.confine`)."""
    for argv in commands:
        name = argv[0].lower().decode("utf-8", "replace") if argv else ""
        if name in ("sort", "sort_ro") and any(a.lower() in (b"by", b"get") for a in argv[2:]):
            return ErrorReply(
                "ERR a transaction over several regions cannot run SORT with BY or GET: "
                "its patterns name other keys"
            )
    return None


def command_keys(commands: Sequence[Sequence[bytes]]) -> list[bytes] | None:
    """Every key the commands name, each once, in order; None when one of them names no
    key (DBSIZE, KEYS, FLUSHALL ...): a transaction over some keys cannot answer it."""
    keys: dict[bytes, None] = {}
    for argv in commands:
        spec = classify(list(argv))
        if not isinstance(spec, CommandSpec):
            continue  # its error is its reply (the scratch run answers it)
        named = spec.keys(list(argv))
        if not named:
            return None
        keys.update(dict.fromkeys(named))
    return list(keys)


def transaction_keys(
    watches: Sequence[tuple[bytes, bytes]], commands: Sequence[Sequence[bytes]]
) -> list[bytes]:
    """Every key a transaction locks, each once: the watched ones, then the commands'."""
    keys: dict[bytes, None] = dict.fromkeys(k for k, _ in watches)
    keys.update(dict.fromkeys(command_keys(commands) or []))
    return list(keys)


@dataclass(slots=True)
class _Attempt:
    """One try with one `start_ts` over one grouping of the keys."""

    start_ts: int
    groups: list[list[bytes]]
    loaded: dict[bytes, Loaded]
    pending: int = 0
    """Region replies still awaited by the current step."""
    outcome: Reply | None = None
    """The worst answer collected so far by the current step (None: all fine)."""
    retry: bool = False
    """The step failed in a way a new attempt may get past."""
    conflicts: list[Conflict] = field(default_factory=list)
    """The other transactions' locks met, one per region at most."""
    prewriting: bool = False
    """Past the locks: the current step is the prewrite."""
    commit_ts: int = 0
    """Asked of the oracle while the prewrites run (0: not yet answered)."""
    final: Reply | None = None
    """A tagged request's recorded reply, met at the primary's lock (`RequestTag`)."""
    is_async: bool = False
    """Prewriting for an async commit: committed once every prewrite has succeeded."""


class Coordinator:
    """Runs one transaction to its end and answers `done` exactly once."""

    def __init__(
        self,
        watches: Sequence[tuple[bytes, bytes]],
        commands: Sequence[Sequence[bytes]],
        io: TxnIO,
        timestamps: TimestampSource,
        scratch: Scratch,
        settings: TxnSettings,
        rng: Random,
        deadline: float,
        done: Done,
        resolve: Callable[[Conflict, int, Callable[[], None]], None] | None = None,
        tag: RequestTag | None = None,
    ) -> None:
        """`deadline` is on `io.now()`'s clock; `resolve(conflict, attempt, then)` clears
        an expired lock met while locking (`Resolver.resolve`; None: just back off);
        `tag`: the request id of an idempotent request (`cairn.txn.idempotent`)."""
        self.watches = dict(watches)
        self.commands = [list(c) for c in commands]
        self.keys = transaction_keys(list(watches), self.commands)
        first = tag.first_key if tag is not None else None
        if first is not None and first in self.keys:  # its slot keeps the request id
            self.keys.remove(first)
            self.keys.insert(0, first)
        named = command_keys(self.commands)
        self.keyless = named is None
        self.read_keys = frozenset(named or ())
        """The keys whose values the commands need (a key only watched is not read)."""
        self.io = io
        self.timestamps = timestamps
        self.scratch = scratch
        self.settings = settings
        self.rng = rng
        self.deadline = deadline
        self._done = done
        self._resolve = resolve
        self.tag = tag
        self.attempts = 0
        self.finished = False
        self._current: _Attempt | None = None
        self._replies: list[Reply] = []

    @property
    def primary(self) -> bytes:
        """The transaction's primary key: its status lives there."""
        return self.keys[0]

    def start(self) -> None:
        """Begin the first attempt."""
        if not self.keys or self.keyless:
            self._finish(KEYLESS)
            return
        refused = unsupported(self.commands)
        if refused is not None:
            self._finish(refused)
            return
        self._begin()

    # -- steps ----------------------------------------------------------------------------

    def _begin(self) -> None:
        if self.io.now() >= self.deadline:
            self._finish(TRYAGAIN)
            return
        self.attempts += 1
        self.timestamps.get(self._got_start)

    def _got_start(self, ts: int | ErrorReply) -> None:
        if isinstance(ts, ErrorReply):
            self._again()
            return
        groups = self.io.group(self.keys)
        if groups is None:
            self._again()
            return
        attempt = _Attempt(ts, groups, {})
        self._current = attempt
        attempt.pending = len(groups)
        for keys in groups:
            watched = [(k, self.watches[k]) for k in keys if k in self.watches]
            plain = [k for k in keys if k in self.read_keys]
            argv = lock_argv(
                ts,
                self.primary,
                self.settings.lock_ttl_ms,
                self.settings.max_bytes,
                watched,
                plain,
            )
            if self.tag is not None and self.primary in keys:
                argv = self.tag.lock_argv(self.primary, argv)
            self.io.send(argv, self._step(attempt, self._lock_reader(attempt, plain)))

    def _step(self, attempt: _Attempt, read: Callable[[Reply], None]) -> Done:
        """A region's reply to the current step (ignored once the attempt is over)."""

        def done(reply: Reply) -> None:
            if self._current is not attempt or self.finished:
                return
            read(reply)
            attempt.pending -= 1
            if attempt.pending == 0:
                self._step_over(attempt)

        return done

    def _lock_reader(self, attempt: _Attempt, keys: list[bytes]) -> Callable[[Reply], None]:
        return lambda reply: self._locked(attempt, keys, reply)

    def _locked(self, attempt: _Attempt, keys: list[bytes], reply: Reply) -> None:
        if self.tag is not None and (final := self.tag.final(reply)) is not None:
            attempt.final = final  # the request id is recorded: that is the answer
            return
        got = read_lock(reply, keys)
        if isinstance(got, list):
            attempt.loaded.update((v.key, v) for v in got)
        elif isinstance(got, Conflict):
            attempt.retry = True
            attempt.conflicts.append(got)
        elif isinstance(got, Status) and got.word == b"watch":
            attempt.outcome = NULL_ARRAY
        elif isinstance(got, Status) and got.word == b"toolarge":
            attempt.outcome = attempt.outcome or TOO_LARGE
        else:  # rolledback (a resolver was faster than our primary's lock), or a failure
            attempt.retry = True

    def _step_over(self, attempt: _Attempt) -> None:
        """Every region answered the current step: go on, or roll back and end/retry."""
        if attempt.is_async:
            if attempt.retry:
                self._settle_async(attempt)
            else:
                self._async_committed(attempt)
        elif attempt.final is not None:
            self._abort(attempt, attempt.final)
        elif attempt.outcome is not None:
            self._abort(attempt, attempt.outcome)
        elif attempt.retry:
            self._abort(attempt, None)
        elif not attempt.prewriting:
            self._run_scratch(attempt)
        else:
            if SECONDARIES_FIRST in self.settings.plants:
                self._commit_secondaries(attempt, attempt.commit_ts)
            self._commit_primary(attempt, attempt.commit_ts)

    def _run_scratch(self, attempt: _Attempt) -> None:
        loaded = [attempt.loaded[k] for k in self.keys if k in self.read_keys]
        try:
            now_ms = physical_ms(attempt.start_ts)
            replies, effects = self.scratch(loaded, self.commands, now_ms, attempt.start_ts)
        except ValueError as exc:  # a DUMP the scratch machine could not load
            self._abort(attempt, ErrorReply(f"ERR the transaction could not run: {exc}"))
            return
        stray = next((e.key for e in effects if e.key not in self.read_keys), None)
        if stray is not None:  # a script wrote a key it did not declare: not locked
            message = f"ERR the transaction wrote key {stray!r}, which it does not name"
            self._abort(attempt, ErrorReply(message))
            return
        self._replies = replies
        if not effects and self.tag is None:  # read only: read under locks, nothing to commit
            self._abort(attempt, Array(tuple(replies)))
            return
        if self._async_eligible():
            self._prewrite_async(attempt, effects)
            return
        attempt.prewriting = True
        by_key = {e.key: e for e in effects}
        groups = [[by_key[k] for k in keys if k in by_key] for keys in attempt.groups]
        groups = [g for g in groups if g]
        argvs = [prewrite_argv(attempt.start_ts, group) for group in groups]
        if any(sum(map(len, argv)) > self.settings.max_bytes for argv in argvs):
            self._abort(attempt, CHANGES_TOO_LARGE)  # one region's prewrite is one entry
            return
        attempt.pending = len(groups) + 1  # and the commit timestamp, asked meanwhile
        for argv in argvs:
            self.io.send(argv, self._step(attempt, _prewrote(attempt)))
        stamped = self._step(attempt, lambda reply: None)

        def got(ts: int | ErrorReply) -> None:
            if isinstance(ts, ErrorReply):
                attempt.retry = True
            else:
                attempt.commit_ts = ts
            stamped(ts if isinstance(ts, ErrorReply) else Array(()))

        self.timestamps.get(got)

    # -- async commit ---------------------------------------------------------------------

    def _async_eligible(self) -> bool:
        """Whether this transaction commits asynchronously: untagged (a request id is
        recorded with the primary's commit, `RequestTag`), and few and short keys (they
        are all listed in the primary's lock)."""
        settings = self.settings
        return (
            self.tag is None
            and 0 < len(self.keys) <= settings.async_max_keys
            and sum(map(len, self.keys)) <= settings.async_max_key_bytes
        )

    def _prewrite_async(self, attempt: _Attempt, effects: Sequence[Effect]) -> None:
        """Prewrite every locked key (an unchanged one with the explicit marker), the
        primary's region listing the other keys in the primary's lock; the transaction
        is committed once every prewrite has succeeded (`_async_committed`)."""
        attempt.prewriting = attempt.is_async = True
        by_key = {e.key: e for e in effects}
        primary = self.primary
        argvs = []
        for keys in attempt.groups:
            listed = None
            if primary in keys:
                keys = [primary] + [k for k in keys if k != primary]
                listed = self.keys[1:]
            marked = [by_key.get(k) or Effect(k, KIND_UNCHANGED) for k in keys]
            argvs.append((primary in keys, prewrite_argv(attempt.start_ts, marked, listed)))
        if any(sum(map(len, argv)) > self.settings.max_bytes for _, argv in argvs):
            self._abort(attempt, CHANGES_TOO_LARGE)  # one region's prewrite is one entry
            return
        attempt.pending = len(argvs)
        for holds_primary, argv in argvs:
            read = _prewrote(attempt)
            if SECONDARIES_FIRST in self.settings.plants and not holds_primary:
                read = self._planted_early_commit(attempt, argv, read)
            self.io.send(argv, self._step(attempt, read))

    def _planted_early_commit(
        self, attempt: _Attempt, argv: list[bytes], read: Callable[[Reply], None]
    ) -> Callable[[Reply], None]:
        """The planted bug (`SECONDARIES_FIRST`): a secondary region committed as soon as
        its own prewrite answered, before the commit point."""
        keys = list(argv[3 : 3 + 4 * int(argv[2]) : 4])

        def early(reply: Reply) -> None:
            read(reply)
            if isinstance(status := read_status(reply), Status) and status.word == b"ok":
                self.io.send(commit_argv(attempt.start_ts, attempt.start_ts, keys, False), _ignore)

        return early

    def _async_committed(self, attempt: _Attempt) -> None:
        """Every prewrite succeeded: the transaction is committed (no rollback can be
        decided at its primary any more). Answer, then commit in the background: the
        primary first (its status written), then the others: a secondary's lock must
        never be gone while its primary is undecided, or a check of the secondaries
        would read the transaction as not prewritten and roll it back."""
        self._finish(Array(tuple(self._replies)))
        self._background_commit(attempt)

    def _background_commit(self, attempt: _Attempt) -> None:
        """Commit the primary's region until it answers (or twice the ttl has passed: a
        reader then rolls the transaction forward), then the other regions. An async
        commit records its `start_ts` as its commit_ts (docs/transactions.md)."""
        give_up = self.io.now() + 2 * self.settings.lock_ttl_ms / 1000
        start_ts = attempt.start_ts

        def send() -> None:
            self.io.send(commit_argv(start_ts, start_ts, self._primary_keys(), True), answered)

        def answered(reply: Reply) -> None:
            status = read_status(reply)
            if isinstance(status, Status) and status.word == b"ok":
                self._commit_secondaries(attempt, start_ts)
            elif isinstance(status, Status):
                return  # `rolledback`: impossible once every prewrite succeeded
            elif self.io.now() < give_up:
                self.io.later(self.settings.commit_retry_s, send)

        send()

    def _settle_async(self, attempt: _Attempt) -> None:
        """A prewrite failed, maybe only in appearance (its answer lost while it applied,
        so a reader may have found every key prewritten and committed the transaction):
        roll back the primary first, sending it until it answers. `ok`: rolled back for
        good, so the other locks are dropped and the transaction starts again;
        `committed`: a reader committed it, so it is answered and rolled forward; no
        answer before the deadline: `-UNCERTAIN`."""
        self._current = None  # later replies of this attempt are not steps any more
        start_ts = attempt.start_ts

        def send() -> None:
            self.io.send(rollback_argv(start_ts, self._primary_keys(), True), answered)

        def answered(reply: Reply) -> None:
            if self.finished:
                return
            status = read_status(reply)
            if isinstance(status, Status) and status.word == b"committed":
                self._finish(Array(tuple(self._replies)))
                self._background_commit(attempt)
            elif isinstance(status, Status):
                self._abort(attempt, None)
            elif self.io.now() >= self.deadline:
                self._finish(UNCERTAIN)
            else:
                self.io.later(self.settings.commit_retry_s, send)

        send()

    # -- two-phase commit -----------------------------------------------------------------

    def _commit_primary(self, attempt: _Attempt, commit_ts: int) -> None:
        """Commit the primary's region (the keys that are in it now, should a split or a
        merge have moved some since the locks), sending it again until it answers."""

        def send() -> None:
            argv = commit_argv(attempt.start_ts, commit_ts, self._primary_keys(), True)
            if self.tag is not None:  # commit and record the request id in one entry
                argv = self.tag.commit_argv(argv, self._replies)
            self.io.send(argv, answered)

        def answered(reply: Reply) -> None:
            if self._current is not attempt or self.finished:
                return
            if self.tag is not None and (final := self.tag.final(reply)) is not None:
                self._replies = []  # recorded meanwhile: not committed, roll back the rest
                self._abort(attempt, final)
                return
            status = read_status(reply)
            if isinstance(status, Status) and status.word == b"ok":
                replies = self._replies
                tag = self.tag
                self._finish(Array(tuple(replies)) if tag is None else tag.client_reply(replies))
                if SECONDARIES_FIRST not in self.settings.plants:
                    self._commit_secondaries(attempt, commit_ts)
            elif isinstance(status, Status) and status.word == b"rolledback":
                self._replies = []  # not committed: a resolver rolled us back; start over
                self._abort(attempt, None)
            elif self.io.now() >= self.deadline:
                self._finish(UNCERTAIN)
            else:  # unreachable, or its outcome unknown: a commit is safe to send again
                self.io.later(self.settings.commit_retry_s, send)

        send()

    def _commit_secondaries(self, attempt: _Attempt, commit_ts: int) -> None:
        """Commit the other keys' regions, each until it answers (or twice the lock's ttl
        has passed: then a reader rolls it forward, as after a coordinator's crash)."""
        give_up = self.io.now() + 2 * self.settings.lock_ttl_ms / 1000
        primary = set(self._primary_keys())
        rest = [k for k in self.keys if k not in primary]
        self._send_until_ok(
            lambda keys: commit_argv(attempt.start_ts, commit_ts, keys, False), rest, give_up
        )

    def _send_until_ok(
        self, make: Callable[[list[bytes]], list[bytes]], keys: list[bytes], give_up: float
    ) -> None:
        """Send `make(group)` for each region's group of `keys`; a group that fails is
        grouped and sent again after a pause (the layout may have changed)."""
        for group in self._groups_now(keys):

            def answered(reply: Reply, group: list[bytes] = group) -> None:
                if isinstance(read_status(reply), Status) or self.io.now() >= give_up:
                    return
                retry = self.settings.commit_retry_s
                self.io.later(retry, lambda: self._send_until_ok(make, group, give_up))

            self.io.send(make(group), answered)

    # -- endings --------------------------------------------------------------------------

    def _groups_now(self, keys: list[bytes]) -> list[list[bytes]]:
        """`keys` by region under the layout as it is now (a split or a merge may have
        moved some since they were locked); a key a group when one has no known region."""
        groups = self.io.group(keys) if keys else []
        return groups if groups is not None else [[k] for k in keys]

    def _primary_keys(self) -> list[bytes]:
        """The keys in the primary's region now, the primary first."""
        primary = self.primary
        for keys in self._groups_now(self.keys):
            if primary in keys:
                return [primary] + [k for k in keys if k != primary]
        return [primary]

    def _abort(self, attempt: _Attempt, outcome: Reply | None) -> None:
        """Roll back every lock of `attempt`; then answer `outcome`, or (None) try again
        after a randomised pause (resolving the conflicting locks if they have expired)."""
        self._current = None
        primary = self._primary_keys()
        groups = [primary] + [g for g in self._groups_now(self.keys) if self.primary not in g]
        attempt.pending = len(groups)
        conflicts = attempt.conflicts

        def rolled(reply: Reply) -> None:
            attempt.pending -= 1
            if attempt.pending or self.finished:
                return
            if outcome is not None:
                self._finish(outcome)
            elif conflicts and self._resolve is not None:
                self._resolve_all(conflicts)
            else:
                self._again()

        for i, keys in enumerate(groups):
            self.io.send(rollback_argv(attempt.start_ts, keys, i == 0), rolled)

    def _resolve_all(self, conflicts: list[Conflict]) -> None:
        """Settle every lock the attempt met (one per region), all at once, then try
        again. Ask each lock's primary even while its ttl runs: a lock whose transaction
        committed (its coordinator died, or is still committing its secondaries) is
        rolled forward now instead of blocking us until it expires. Settling only one
        and meeting the next on the following attempt cost a dead coordinator's every
        victim one attempt per region its locks span."""
        assert self._resolve is not None
        left = [len(conflicts)]

        def settled() -> None:
            left[0] -= 1
            if left[0] == 0:
                self._again()

        for conflict in conflicts:
            self._resolve(conflict, self.attempts, settled)

    def _again(self) -> None:
        """Back off, then a new attempt (the deadline is checked as it begins)."""
        if self.finished:
            return
        self._replies = []
        pause = backoff(self.rng, self.settings, self.attempts)
        if self.io.now() + pause >= self.deadline:
            self._finish(TRYAGAIN)
            return
        self.io.later(pause, self._begin)

    def _finish(self, reply: Reply) -> None:
        if not self.finished:
            self.finished = True
            self._done(reply)


def _ignore(reply: Reply) -> None:
    """A reply nobody waits for."""


def _prewrote(attempt: _Attempt) -> Callable[[Reply], None]:
    def read(reply: Reply) -> None:
        status = read_status(reply)
        if not (isinstance(status, Status) and status.word == b"ok"):
            attempt.retry = True  # `lost`: a resolver rolled a lock back; or unreachable

    return read
