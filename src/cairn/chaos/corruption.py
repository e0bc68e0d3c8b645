"""Damage to the LMDB data file of a stopped node, for the corruption fault.

Two kinds, both on a node that is not running:

- `flip_log_bit`: one bit flipped inside the bytes of a Raft log entry record, found in
  the data file by its content (the entry's checksum must catch it at start);
- `truncate_data_file`: the data file cut short (the tail of the file, where LMDB's newest
  pages live, is gone, as after a lost write-back of a file's end).

The runner keeps a copy of the data directory taken before the damage, checks that the
node refuses to start, then restores the copy; see `cairn.chaos.runner`.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import lmdb

from cairn.storage.lmdb_env import LOG_DB

DATA_FILE = "data.mdb"


def flip_log_bit(data_dir: Path, rng: random.Random) -> str:
    """Flip one bit inside a log entry's stored bytes; a description of the damage."""
    candidates = _log_records(data_dir)
    if not candidates:
        return truncate_data_file(data_dir, rng)
    path = data_dir / DATA_FILE
    data = bytearray(path.read_bytes())
    rng.shuffle(candidates)
    for index, value in candidates:
        at = data.find(value)
        if at < 0 or data.find(value, at + 1) >= 0:
            continue  # not found in one piece, or ambiguous
        offset = at + rng.randrange(len(value))
        bit = rng.randrange(8)
        data[offset] ^= 1 << bit
        path.write_bytes(bytes(data))
        return f"bit {bit} of byte {offset} of {DATA_FILE} flipped (inside log entry {index})"
    return truncate_data_file(data_dir, rng)


def truncate_data_file(data_dir: Path, rng: random.Random) -> str:
    """Cut the data file to between 30% and 90% of its size (whole 4 KiB pages)."""
    path = data_dir / DATA_FILE
    size = path.stat().st_size
    keep = max(2, int(size * rng.uniform(0.3, 0.9)) // 4096) * 4096
    with path.open("r+b") as f:
        f.truncate(keep)
    return f"{DATA_FILE} truncated from {size} to {keep} bytes"


def _log_records(data_dir: Path) -> list[tuple[int, bytes]]:
    """(index, stored bytes) of the newer half of the log's entries (at least 24 bytes)."""
    env = lmdb.open(str(data_dir), readonly=True, lock=False, max_dbs=8, subdir=True)
    try:
        db = env.open_db(LOG_DB, create=False)
        with env.begin(db=db) as txn:
            records = [
                (int.from_bytes(bytes(k), "big"), bytes(v)) for k, v in txn.cursor() if len(v) >= 24
            ]
    finally:
        env.close()
    return records[len(records) // 2 :]


def backup(data_dir: Path, to: Path) -> None:
    """Copy a stopped node's data directory to `to` (replacing it)."""
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(data_dir, to)


def restore(data_dir: Path, backup_dir: Path) -> None:
    """Put a `backup` back in place of the data directory."""
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(backup_dir, data_dir)
    shutil.rmtree(backup_dir, ignore_errors=True)
