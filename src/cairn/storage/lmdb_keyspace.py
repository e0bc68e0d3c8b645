"""`LmdbKeyspace`: `cairn.store`'s ordered `Keyspace` in the `kv` database of a node's LMDB.

Theory of operation. Each `WriteBatch` is an LMDB write transaction. Standing alone, a
batch commits on its own (without fsync: durability is the node's `sync`). Inside
`group(wtx)`, the node's one write transaction for a whole Ready, each batch is a nested
transaction: `commit()` folds it into the outer one and `abort()` forgets it, and the
outer transaction commits and syncs once (group commit). Reads outside a batch go through
the outer transaction when there is one, so they see what was applied in it.

LMDB keys are at most `max_key_size()` bytes (511), Redis keys are not. Internal keys are
therefore encoded, preserving their order exactly:
- a key of at most `limit` bytes is stored as `key + b"\\x00"`;
- longer keys that share their first `limit` bytes `p` share one record `p + b"\\x01"`
  whose value is the msgpack list of their `[key, value]` pairs in key order (a bucket).
Appending 0x00 is order-preserving, and `p + 0x01` sorts after every short key with
prefix `p` and before any key that is greater in its first `limit` bytes, so a cursor walk
that expands buckets yields keys in exactly their byte order. A bucket is rewritten on
each change: cheap for the rare long key; a hash whose Redis key is longer than `limit`
costs O(fields) per write (its field records all share one bucket). `count()` is LMDB's
record count plus the extra members of buckets, kept in the `meta` database.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

import lmdb
import msgpack

from cairn.storage.lmdb_env import DISK_ERRORS, LmdbEnv, WriteTxn

_SHORT = b"\x00"
_BUCKET = b"\x01"
_EXTRA_KEY = b"kv_bucket_extra"
_U64 = struct.Struct(">Q")

Pairs = list[tuple[bytes, bytes]]


class LmdbKeyspace:
    """An ordered byte key-value space in the `kv` database (see the module docstring)."""

    durable = True
    """See `Keyspace.durable`: batches are LMDB commits in the node's one environment."""

    def __init__(self, env: LmdbEnv, limit: int | None = None) -> None:
        """A keyspace in `env`; `limit` (tests only) lowers the direct-key length limit.

        The limit is part of the on-disk format: open a keyspace with the one it was
        written with (the default).
        """
        self.env = env
        most = env.raw.max_key_size() - 1
        self.limit = most if limit is None else min(limit, most)
        """Keys up to this many bytes get a record of their own."""
        self._outer: WriteTxn | None = None
        self._batch: LmdbWriteBatch | None = None

    @contextmanager
    def group(self, wtx: WriteTxn) -> Iterator[None]:
        """Run batches as nested transactions of `wtx` for the duration of the block."""
        if self._batch is not None:
            raise RuntimeError("a write batch is open")
        self._outer = wtx
        try:
            yield
        finally:
            self._outer = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """See `Keyspace.transaction`: one LMDB write transaction for the whole block,
        each batch a nested transaction of it; committed (not synced) when the block ends,
        aborted with everything in it if the block raises.

        Inside `group` (a caller's transaction, e.g. the log write that applies a
        Ready's entries: `NodeStore.write_many`'s `apply`) the block joins that
        transaction instead: it commits or aborts with it."""
        if self._outer is not None:
            yield
            return
        with self.env.write() as wtx, self.group(wtx):
            yield

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None."""
        # `_reading` spelled out: every GET comes here, and the context manager cost more
        # than the LMDB lookup.
        if self._outer is not None:
            return _get(self._outer.txn, self, key)
        with self.env.read() as txn:
            return _get(txn, self, key)

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end` (no bound when None), in key order."""
        if self._outer is not None:  # inside `group`: no context manager on this hot path
            return _scan(self._outer.txn, self, start, end, limit)
        with self.env.read() as txn:
            return _scan(txn, self, start, end, limit)

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end`, in descending key order."""
        if self._outer is not None:
            return _rscan(self._outer.txn, self, start, end, limit)
        with self.env.read() as txn:
            return _rscan(txn, self, start, end, limit)

    def count(self) -> int:
        """The number of records."""
        with self._reading() as txn:
            return _count(txn, self.env)

    @contextmanager
    def view(self) -> Iterator[KeyspaceView]:
        """Reads through one transaction (a consistent view) for the duration of the block:
        the node's open transaction inside `group`, else a read-only one."""
        with self._reading() as txn:
            yield KeyspaceView(self, txn)

    def stage_put(self, wtx: WriteTxn, key: bytes, value: bytes) -> None:
        """Write one short record straight into the node's transaction `wtx`, outside any
        batch: the region system records that `NodeStore` writes with Raft metadata."""
        self._check_short(key)
        wtx.txn.put(key + _SHORT, value, db=self.env.kv_db)

    def stage_delete_prefix(self, wtx: WriteTxn, prefix: bytes) -> int:
        """Delete every short record starting with `prefix` inside `wtx`; how many."""
        self._check_short(prefix)
        count = 0
        with wtx.txn.cursor(db=self.env.kv_db) as cur:
            present = cur.set_range(prefix)
            while present and cur.key().startswith(prefix):
                present = cur.delete()
                count += 1
        return count

    def _check_short(self, key: bytes) -> None:
        if self._batch is not None:
            raise RuntimeError("a write batch is open")
        if len(key) > self.limit:
            raise ValueError(f"a system key must be at most {self.limit} bytes: {key!r}")

    def begin(self) -> LmdbWriteBatch:
        """Open a write batch (at most one at a time)."""
        if self._batch is not None:
            raise RuntimeError("a write batch is already open")
        if self._outer is not None:
            self.env.check_writable()
            txn = self.env.raw.begin(write=True, parent=self._outer.txn)
            self._batch = LmdbWriteBatch(self, txn, None)
        else:
            wtx = self.env.begin_write()
            self._batch = LmdbWriteBatch(self, wtx.txn, wtx)
        return self._batch

    @contextmanager
    def _reading(self) -> Iterator[lmdb.Transaction[bytes]]:
        if self._outer is not None:
            yield self._outer.txn
            return
        with self.env.read() as txn:
            yield txn

    def _close(self, batch: LmdbWriteBatch) -> None:
        if self._batch is not batch:
            raise RuntimeError("write batch is not open")
        self._batch = None


class KeyspaceView:
    """Reads of an `LmdbKeyspace` through one LMDB transaction (see `LmdbKeyspace.view`);
    a write batch reads the same way, seeing its own writes."""

    def __init__(self, space: LmdbKeyspace, txn: lmdb.Transaction[bytes]) -> None:
        self._space = space
        self._txn = txn

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None."""
        return _get(self._txn, self._space, key)

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Like `LmdbKeyspace.scan`, in this view."""
        return _scan(self._txn, self._space, start, end, limit)

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Like `LmdbKeyspace.rscan`, in this view."""
        return _rscan(self._txn, self._space, start, end, limit)


class LmdbWriteBatch(KeyspaceView):
    """A write batch of an `LmdbKeyspace`: one (possibly nested) LMDB write transaction."""

    def __init__(
        self, space: LmdbKeyspace, txn: lmdb.Transaction[bytes], own: WriteTxn | None
    ) -> None:
        super().__init__(space, txn)
        self._own = own
        self._done = False

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` at `key`, replacing any previous value."""
        # The hot path of every write command: the guard is inlined rather than a
        # context manager (which costs more than the LMDB put itself).
        if self._done:
            raise RuntimeError("write batch is not open")
        try:
            if len(key) <= self._space.limit:
                self._txn.put(key + _SHORT, value, db=self._space.env.kv_db)
            else:
                self._update_bucket(key, value)
        except DISK_ERRORS as exc:
            raise self._disk_error(exc) from exc

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        if self._done:
            raise RuntimeError("write batch is not open")
        try:
            if len(key) <= self._space.limit:
                self._txn.delete(key + _SHORT, db=self._space.env.kv_db)
            else:
                self._update_bucket(key, None)
        except DISK_ERRORS as exc:
            raise self._disk_error(exc) from exc

    def clear(self) -> None:
        """Remove every record."""
        with self._guard():
            self._txn.drop(self._space.env.kv_db, delete=False)
            self._txn.delete(_EXTRA_KEY, db=self._space.env.meta_db)

    def commit(self) -> None:
        """Make the batch's changes part of the keyspace (or of the outer transaction)."""
        self._finish()
        if self._own is not None:
            self._space.env.commit(self._own)
            return
        try:
            self._txn.commit()
        except DISK_ERRORS as exc:
            raise self._space.env.fail("keyspace commit", exc) from exc

    def abort(self) -> None:
        """Forget the batch's changes (a no-op once a disk error has ended the batch)."""
        if self._done:
            return
        self._finish()
        self._abort_txn()

    def _finish(self) -> None:
        if self._done:
            raise RuntimeError("write batch is not open")
        self._done = True
        self._space._close(self)

    def _abort_txn(self) -> None:
        if self._own is not None:
            self._space.env.abort(self._own)
        else:
            self._txn.abort()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn a disk error into `DiskFailedError`: the batch ends, the environment fails."""
        if self._done:
            raise RuntimeError("write batch is not open")
        try:
            yield
        except DISK_ERRORS as exc:
            raise self._disk_error(exc) from exc

    def _disk_error(self, exc: BaseException) -> BaseException:
        """End the batch after a disk error; the error to raise (the environment fails)."""
        self._finish()
        self._abort_txn()
        return self._space.env.fail("keyspace write", exc)

    def _update_bucket(self, key: bytes, value: bytes | None) -> None:
        db = self._space.env.kv_db
        bucket_key = key[: self._space.limit] + _BUCKET
        raw = self._txn.get(bucket_key, db=db)
        pairs: Pairs = [] if raw is None else _decode_bucket(raw)
        before = len(pairs)
        pairs = [(k, v) for k, v in pairs if k != key]
        if value is not None:
            pairs.append((key, value))
            pairs.sort()
        if pairs:
            self._txn.put(bucket_key, msgpack.packb([list(p) for p in pairs]), db=db)
        elif raw is not None:
            self._txn.delete(bucket_key, db=db)
        extra_delta = max(len(pairs) - 1, 0) - max(before - 1, 0)
        if extra_delta:
            _add_extra(self._txn, self._space.env, extra_delta)


def _get(txn: lmdb.Transaction[bytes], space: LmdbKeyspace, key: bytes) -> bytes | None:
    db = space.env.kv_db
    if len(key) <= space.limit:
        return txn.get(key + _SHORT, db=db)
    raw = txn.get(key[: space.limit] + _BUCKET, db=db)
    if raw is None:
        return None
    return next((v for k, v in _decode_bucket(raw) if k == key), None)


def _scan(
    txn: lmdb.Transaction[bytes],
    space: LmdbKeyspace,
    start: bytes,
    end: bytes | None,
    limit: int | None,
) -> list[tuple[bytes, bytes]]:
    # The loop of every sub-record walk (sets, sorted sets, their order-statistics index):
    # a short record (the usual case) is handled inline, a bucket expanded.
    out: list[tuple[bytes, bytes]] = []
    if limit is not None and limit <= 0:
        return out
    seek = start + _SHORT if len(start) <= space.limit else start[: space.limit] + _BUCKET
    wanted = -1 if limit is None else limit
    append = out.append
    with txn.cursor(db=space.env.kv_db) as cur:
        if not cur.set_range(seek):
            return out
        for encoded, value in cur.iternext():
            if encoded[-1] == 0:
                key = encoded[:-1]
                if key < start:
                    continue
                if end is not None and key >= end:
                    return out
                append((key, value))
                if len(out) == wanted:
                    return out
                continue
            for key, val in _decode_bucket(value):
                if key < start:
                    continue
                if end is not None and key >= end:
                    return out
                append((key, val))
                if len(out) == wanted:
                    return out
    return out


def _rscan(
    txn: lmdb.Transaction[bytes],
    space: LmdbKeyspace,
    start: bytes,
    end: bytes | None,
    limit: int | None,
) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    if limit is not None and limit <= 0:
        return out
    wanted = -1 if limit is None else limit
    append = out.append
    with txn.cursor(db=space.env.kv_db) as cur:
        # Start at the first record at or after `end`'s encoding (a bucket there may still
        # hold keys below `end`), or at the last record; then walk backwards.
        if end is None:
            placed = cur.last()
        else:
            seek = end + _SHORT if len(end) <= space.limit else end[: space.limit] + _BUCKET
            placed = cur.set_range(seek) or cur.last()
        if not placed:
            return out
        for encoded, value in cur.iterprev():
            if encoded[-1] == 0:
                key = encoded[:-1]
                if end is not None and key >= end:
                    continue
                if key < start:
                    return out
                append((key, value))
                if len(out) == wanted:
                    return out
                continue
            for key, val in reversed(_decode_bucket(value)):
                if end is not None and key >= end:
                    continue
                if key < start:
                    return out
                append((key, val))
                if len(out) == wanted:
                    return out
    return out


def _decode_bucket(raw: bytes) -> Pairs:
    return [(bytes(k), bytes(v)) for k, v in msgpack.unpackb(raw)]


def _count(txn: lmdb.Transaction[bytes], env: LmdbEnv) -> int:
    records: int = txn.stat(env.kv_db)["entries"]
    return records + _extra(txn, env)


def _extra(txn: lmdb.Transaction[bytes], env: LmdbEnv) -> int:
    raw = txn.get(_EXTRA_KEY, db=env.meta_db)
    return 0 if raw is None else int(_U64.unpack(raw)[0])


def _add_extra(txn: lmdb.Transaction[bytes], env: LmdbEnv, delta: int) -> None:
    txn.put(_EXTRA_KEY, _U64.pack(_extra(txn, env) + delta), db=env.meta_db)
