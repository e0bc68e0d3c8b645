"""`LmdbEnv`: one node's LMDB environment, its named databases and its failure state.

Theory of operation. A node keeps everything durable in one LMDB environment: the Raft
log (`raft_log`), the hard state, snapshot and first index (`raft_state`), the state
machine (`kv`) and the identity of the data directory (`meta`); for a multi-raft node the
logs (`region_log`) and Raft state (`region_raft`) of many regions, keyed by region id, and
each hosted region's metadata (`regions`). LMDB is a copy-on-write
B-tree: a write transaction becomes visible atomically at commit, and a crash never
exposes half of one. The environment is opened with `sync=False, metasync=False`, so a
commit only hands pages to the operating system; durability comes from an explicit
`sync()` (fdatasync). That is what makes group commit possible: the driver writes the
Ready output of every Raft group and the state machine in one transaction, then syncs
once. Writes become durable in commit order, which is the `LogStore` contract.

Any error while writing, committing or syncing (I/O error, disk full, LMDB map full, a
failed fsync) moves the environment into a failed state for good: that write and every
later one raise `DiskFailedError`, so the node stops acknowledging. Reads keep working.

At open, the `meta` database must name the same node and cluster and a format this code
understands; a data directory that belongs to someone else is refused, never adopted.
A `flock` on `cairn.lock` keeps a second process (or a second open in this process, which
LMDB forbids) away from the directory.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import lmdb

from cairn.storage.errors import (
    CorruptLogError,
    DataDirMismatchError,
    DiskFailedError,
    FormatVersionError,
    StartupError,
)
from cairn.storage.failpoints import InjectedError, fail_point

FORMAT_VERSION = 3
"""The on-disk format this code writes; a data directory with another one is refused.
2 (2026-12-07): the sub-records of composite values carry the key's version (background
deletion), set members are `m` records with an order-statistics index, stream entries
carry their sequence numbers: a format-1 keyspace would be misread.
3 (2026-12-08): a set is a dense position array, member records holding their position and
position records holding their member (`cairn.store.set_records`), instead of empty
member records and order-statistics counts: a format-2 set would be misread."""

DEFAULT_MAP_SIZE = 4 << 30
"""The default LMDB map size (address space reserved; the file grows as data is written)."""

LOG_DB = b"raft_log"
STATE_DB = b"raft_state"
KV_DB = b"kv"
META_DB = b"meta"
REGION_LOG_DB = b"region_log"
REGION_RAFT_DB = b"region_raft"
REGIONS_DB = b"regions"
DB_NAMES = (LOG_DB, STATE_DB, KV_DB, META_DB, REGION_LOG_DB, REGION_RAFT_DB, REGIONS_DB)
"""Every named database; those missing from an older data directory are created at open."""

FP_BEGIN = "storage.lmdb.begin"
"""Failure point reached when a write transaction begins."""
FP_COMMIT = "storage.lmdb.commit"
"""Failure point reached just before a write transaction commits."""
FP_SYNC = "storage.lmdb.sync"
"""Failure point reached just before the environment is fsynced."""

LOCK_FILE = "cairn.lock"

_FORMAT_KEY = b"format_version"
_NODE_KEY = b"node_id"
_CLUSTER_KEY = b"cluster_id"
_U64 = struct.Struct(">Q")

DISK_ERRORS: tuple[type[BaseException], ...] = (lmdb.Error, OSError)
"""Errors that mean the disk (or LMDB's view of it) refused a write. Every `lmdb.Error`
counts: py-lmdb raises the base class itself for an errno it has no class for, which is
what a failed fdatasync (EIO) or a full disk (ENOSPC) at commit or sync looks like."""


@dataclass(frozen=True, slots=True)
class LmdbOptions:
    """How to open a node's environment."""

    map_size: int = DEFAULT_MAP_SIZE
    """Bytes of address space for the database; writes beyond it fail with "map full"."""
    max_readers: int = 126


@dataclass(slots=True)
class WriteTxn:
    """A write transaction in progress, with actions to run only if it commits.

    Writers update their in-memory caches through `after_commit`, so a failed commit
    never leaves a cache ahead of the disk.
    """

    txn: lmdb.Transaction[bytes]
    staged: dict[object, object] = field(default_factory=dict)
    """Per-writer state staged in this transaction so far (a writer may stage twice)."""
    _after: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the transaction has committed (in registration order)."""
        self._after.append(action)


class LmdbEnv:
    """One node's LMDB environment; see the module docstring."""

    def __init__(
        self,
        raw: lmdb.Environment,
        dbs: dict[bytes, lmdb._Database],
        path: Path,
        lock: IO[bytes],
        options: LmdbOptions,
    ) -> None:
        self.raw = raw
        self.path = path
        self.options = options
        self.log_db = dbs[LOG_DB]
        self.state_db = dbs[STATE_DB]
        self.kv_db = dbs[KV_DB]
        self.meta_db = dbs[META_DB]
        self.region_log_db = dbs[REGION_LOG_DB]
        self.region_raft_db = dbs[REGION_RAFT_DB]
        self.regions_db = dbs[REGIONS_DB]
        self._lock = lock
        self._failed: DiskFailedError | None = None
        self._closed = False
        self._writing = False
        self.map_pass_hook: Callable[[int], None] | None = None
        """Called from inside a long pass that touches many pages of the map without
        yielding (a log compaction's deletes), with the bytes of the map it may have
        touched since the last call; the node's `cairn.runtime.map_trim.MapTrimmer`
        trims from it, so the pass cannot map more than a step between trims."""

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], node_id: int, cluster_id: str, options: LmdbOptions
    ) -> LmdbEnv:
        """Open (creating if needed) the data directory of node `node_id` of `cluster_id`."""
        data_dir = Path(path)
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock_data_dir(data_dir)
        try:
            raw = _open_raw(data_dir, options)
        except BaseException:
            lock.close()
            raise
        try:
            dbs = _open_dbs(raw, data_dir, node_id, cluster_id)
            raw.sync(True)
        except BaseException:
            raw.close()
            lock.close()
            raise
        return cls(raw, dbs, data_dir, lock, options)

    @property
    def failed(self) -> DiskFailedError | None:
        """The error that failed this environment, or None while it is healthy."""
        return self._failed

    @property
    def writing(self) -> bool:
        """Whether a write transaction is open now."""
        return self._writing

    def check_writable(self) -> None:
        """Raise `DiskFailedError` if an earlier write failed."""
        if self._failed is not None:
            raise DiskFailedError(f"storage at {self.path} failed earlier: {self._failed}")
        if self._closed:
            raise DiskFailedError(f"storage at {self.path} is closed")

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """A write transaction committed when the block ends (not synced: see `sync`).

        A disk error inside the block or at commit fails the environment; any other
        exception aborts the transaction, leaves the environment healthy and propagates.
        """
        wtx = self.begin_write()
        try:
            yield wtx
        except DISK_ERRORS as exc:
            self.abort(wtx)
            raise self._fail("write", exc) from exc
        except BaseException:
            self.abort(wtx)
            raise
        self.commit(wtx)

    def begin_write(self) -> WriteTxn:
        """Open the (single) write transaction; end it with `commit` or `abort`."""
        self.check_writable()
        if self._writing:
            # LMDB's writer lock is not re-entrant: a second writer here would deadlock.
            raise RuntimeError("a write transaction is already open on this environment")
        try:
            _lmdb_fail_point(FP_BEGIN, "mdb_txn_begin")
            wtx = WriteTxn(self.raw.begin(write=True))
        except DISK_ERRORS as exc:
            raise self._fail("write", exc) from exc
        self._writing = True
        return wtx

    def commit(self, wtx: WriteTxn) -> None:
        """Commit `wtx` (not synced), then run its after-commit actions."""
        self._writing = False
        try:
            _lmdb_fail_point(FP_COMMIT, "mdb_txn_commit")
            wtx.txn.commit()
        except DISK_ERRORS as exc:
            wtx.txn.abort()
            raise self._fail("commit", exc) from exc
        for action in wtx._after:
            action()

    def abort(self, wtx: WriteTxn) -> None:
        """Abandon `wtx`: nothing it wrote is kept and no after-commit action runs."""
        self._writing = False
        wtx.txn.abort()

    def fail(self, what: str, exc: BaseException) -> DiskFailedError:
        """Fail the environment because a disk error (one of `DISK_ERRORS`) broke `what`.

        Returns the `DiskFailedError` to raise; every later write raises it too.
        """
        return self._fail(what, exc)

    def read(self) -> lmdb.Transaction[bytes]:
        """A read-only transaction (a consistent view); use it as a context manager."""
        return self.raw.begin()

    def sync(self) -> None:
        """Make every committed transaction durable (fdatasync); failure fails the env."""
        self.check_writable()
        try:
            _lmdb_fail_point(FP_SYNC, "mdb_env_sync")
            self.raw.sync(True)
        except DISK_ERRORS as exc:
            raise self._fail("fsync", exc) from exc

    def close(self) -> None:
        """Sync (if healthy) and close; the data directory may then be opened again."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.raw.sync(True)
        finally:
            self._closed = True
            self.raw.close()
            self._lock.close()

    def _fail(self, what: str, exc: BaseException) -> DiskFailedError:
        self._failed = DiskFailedError(_describe_failure(what, exc, self.path, self.options))
        return self._failed


_T = TypeVar("_T")


def open_built(
    path: str | os.PathLike[str],
    node_id: int,
    cluster_id: str,
    options: LmdbOptions | None,
    build: Callable[[LmdbEnv], _T],
) -> _T:
    """Open the data directory (default options when None) and `build` a store over it;
    the directory is closed again if building fails, so a store that refuses to open
    (damage found by its verification) does not keep the directory locked."""
    env = LmdbEnv.open(path, node_id, cluster_id, options or LmdbOptions())
    try:
        return build(env)
    except BaseException:
        env.close()
        raise


def _lmdb_fail_point(name: str, call: str) -> None:
    """`fail_point(name)` at an LMDB call, raising what py-lmdb raises for the same failure:
    an injected errno becomes `lmdb.Error("<call>: <strerror>")`, so tests take the path a
    real failing disk takes."""
    try:
        fail_point(name)
    except InjectedError as exc:
        raise lmdb.Error(f"{call}: {os.strerror(exc.errno or errno.EIO)}") from exc


def _no_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return isinstance(exc, lmdb.Error) and os.strerror(errno.ENOSPC) in str(exc)


def _describe_failure(what: str, exc: BaseException, path: Path, options: LmdbOptions) -> str:
    if isinstance(exc, lmdb.MapFullError):
        return (
            f"{what} failed at {path}: the LMDB map is full ({options.map_size} bytes); "
            "raise the storage map size (and make sure the disk has room), then restart"
        )
    if _no_space(exc):
        return f"{what} failed at {path}: no space left on the device; free space, then restart"
    return f"{what} failed at {path}: {exc!r}; the node stops acknowledging writes"


def _lock_data_dir(data_dir: Path) -> IO[bytes]:
    lock = (data_dir / LOCK_FILE).open("ab")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.close()
        raise StartupError(f"data directory {data_dir} is in use by another process") from exc
    return lock


def _open_raw(data_dir: Path, options: LmdbOptions) -> lmdb.Environment:
    try:
        raw = lmdb.open(
            str(data_dir),
            map_size=options.map_size,
            max_dbs=len(DB_NAMES) + 4,
            max_readers=options.max_readers,
            sync=False,
            metasync=False,
            readahead=False,
        )
    except lmdb.Error as exc:
        raise StartupError(f"cannot open LMDB environment at {data_dir}: {exc}") from exc
    try:
        _check_not_truncated(raw, data_dir)
    except BaseException:
        raw.close()
        raise
    return raw


def _check_not_truncated(raw: lmdb.Environment, data_dir: Path) -> None:
    """Refuse a data file shorter than the pages its meta page claims.

    LMDB maps the file and would read past its end, which kills the process with SIGBUS
    instead of an error naming the damage.
    """
    data_file = data_dir / "data.mdb"
    needed = (raw.info()["last_pgno"] + 1) * raw.stat()["psize"]
    actual = data_file.stat().st_size
    if actual < needed:
        raise CorruptLogError(
            f"{data_file} is truncated: {actual} bytes, but its pages reach {needed} bytes"
        )


def _open_dbs(
    raw: lmdb.Environment, data_dir: Path, node_id: int, cluster_id: str
) -> dict[bytes, lmdb._Database]:
    with raw.begin(write=True) as txn:
        existing = _named_dbs(txn)
        if META_DB in existing:
            meta = raw.open_db(META_DB, txn=txn, create=False)
            _check_meta(txn, meta, data_dir, node_id, cluster_id)
        elif existing:
            names = ", ".join(sorted(n.decode(errors="replace") for n in existing))
            raise DataDirMismatchError(
                f"{data_dir} holds an LMDB environment without Cairn metadata ({names}); "
                "refusing to adopt it"
            )
        else:
            meta = raw.open_db(META_DB, txn=txn)
            txn.put(_FORMAT_KEY, _U64.pack(FORMAT_VERSION), db=meta)
            txn.put(_NODE_KEY, _U64.pack(node_id), db=meta)
            txn.put(_CLUSTER_KEY, cluster_id.encode(), db=meta)
        return {name: raw.open_db(name, txn=txn) for name in DB_NAMES}


def _named_dbs(txn: lmdb.Transaction[bytes]) -> set[bytes]:
    """The names of the named databases (they are the keys of LMDB's main database)."""
    with txn.cursor() as cur:
        return {bytes(key) for key in cur.iternext(keys=True, values=False)}


def _check_meta(
    txn: lmdb.Transaction[bytes],
    meta: lmdb._Database,
    data_dir: Path,
    node_id: int,
    cluster_id: str,
) -> None:
    fmt = _read_u64(txn, meta, _FORMAT_KEY, data_dir)
    if fmt > FORMAT_VERSION:
        raise FormatVersionError(
            f"{data_dir} uses storage format {fmt}, newer than this build's {FORMAT_VERSION}; "
            "run a newer Cairn"
        )
    if fmt < FORMAT_VERSION:
        raise FormatVersionError(
            f"{data_dir} uses storage format {fmt}, older than this build's {FORMAT_VERSION} "
            "(the key layout changed); back the cluster up with the Cairn that wrote it "
            "(`cairn ctl backup`) and restore it into a new cluster (`cairn ctl restore`)"
        )
    stored_node = _read_u64(txn, meta, _NODE_KEY, data_dir)
    if stored_node != node_id:
        raise DataDirMismatchError(f"{data_dir} belongs to node {stored_node}, not node {node_id}")
    stored_cluster = (txn.get(_CLUSTER_KEY, db=meta) or b"").decode(errors="replace")
    if stored_cluster != cluster_id:
        raise DataDirMismatchError(
            f"{data_dir} belongs to cluster {stored_cluster!r}, not {cluster_id!r}"
        )


def _read_u64(
    txn: lmdb.Transaction[bytes], meta: lmdb._Database, key: bytes, data_dir: Path
) -> int:
    value = txn.get(key, db=meta)
    if value is None or len(value) != _U64.size:
        raise StartupError(f"{data_dir}: meta record {key.decode()} is missing or malformed")
    number: int = _U64.unpack(value)[0]
    return number
