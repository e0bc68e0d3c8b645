"""`MapTrimmer`: the LMDB data file's pages a read mapped in leave this process's resident
set when advised, and the data reads back the same afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cairn.runtime.map_trim import MapTrimmer, parse_maps, status_kb
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self")

RECORDS = 2000
VALUE = 4096  # one LMDB overflow page and more per record: about 16 MB of file


def _mapped_rss_kb(data_file: Path) -> int:
    """The resident kB of this process's mappings of `data_file` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = len(head) >= 6 and head[5] == str(data_file)
        elif inside and head and head[0] == "Rss:":
            total += int(head[1])
    return total


def _read_all(env: LmdbEnv) -> list[bytes]:
    with env.raw.begin(db=env.kv_db) as txn:
        return [bytes(v) for _, v in txn.cursor()]


def test_trim_drops_the_mapped_pages_and_keeps_the_data(tmp_path: Path) -> None:
    env = LmdbEnv.open(tmp_path, 1, "trim", LmdbOptions())
    try:
        data_file = (tmp_path / "data.mdb").resolve()
        values = [bytes([i % 251]) * VALUE for i in range(RECORDS)]
        with env.raw.begin(write=True, db=env.kv_db) as txn:
            for i, value in enumerate(values):
                txn.put(b"k%06d" % i, value)
        assert _read_all(env) == values  # every page of the file mapped in
        before = _mapped_rss_kb(data_file)
        assert before > RECORDS * VALUE // 1024 // 2
        trimmer = MapTrimmer(data_file, limit_bytes=1)
        assert trimmer.due()
        assert trimmer.trim() >= RECORDS * VALUE
        assert _mapped_rss_kb(data_file) < before // 10
        assert _read_all(env) == values  # read back through the map: faulted in again
        assert _mapped_rss_kb(data_file) > before // 2
        assert not MapTrimmer(data_file, limit_bytes=0).due()
    finally:
        env.close()


def test_only_the_data_file_mappings_are_found() -> None:
    maps = (
        "7f00a000-7f00c000 r--s 00000000 08:01 42 /data/n1/data.mdb\n"
        "7f00c000-7f00d000 rw-s 00002000 08:01 42 /data/n1/data.mdb\n"
        "7f00d000-7f00e000 r--s 00000000 08:01 43 /data/n1/lock.mdb\n"
        "7f00e000-7f00f000 rw-p 00000000 00:00 0\n"
    )
    found = parse_maps(maps, Path("/data/n1/data.mdb"))
    assert [(m.start, m.end, m.offset, m.writable) for m in found] == [
        (0x7F00A000, 0x7F00C000, 0, False),
        (0x7F00C000, 0x7F00D000, 0x2000, True),
    ]
    assert status_kb("Name:\tx\nRssFile:\t  2048 kB\n", "RssFile") == 2048
    assert status_kb("Name:\tx\n", "RssAnon") == 0
