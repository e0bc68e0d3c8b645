"""`MapTrimmer`: the LMDB data file's pages a read mapped in leave this process's resident
set when advised, and the data reads back the same afterwards; a long pass (a log
compaction) reports its work and is trimmed from inside, every `step_bytes`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cairn.env import LogBatch
from cairn.raft.types import ConfState, Entry, HardState
from cairn.runtime.map_trim import MapTrimmer, WorkTrigger, parse_maps, statm_shared_pages
from cairn.storage import LmdbLogStore
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions
from cairn.storage.log_store import MAP_PASS_ENTRY_BYTES, MAP_PASS_EVERY

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
        status = Path("/proc/self/status").read_text().split("RssFile:")[1].split()[0]
        assert abs(trimmer.rss_file_bytes() // 1024 - int(status)) < 4096  # statm's figure
        assert trimmer.due()
        assert trimmer.trim() >= RECORDS * VALUE
        assert _mapped_rss_kb(data_file) < before // 10
        assert _read_all(env) == values  # read back through the map: faulted in again
        assert _mapped_rss_kb(data_file) > before // 2
        assert not MapTrimmer(data_file, limit_bytes=0).due()
        trimmer.close()
        roomy = MapTrimmer(data_file, limit_bytes=1 << 40, step_bytes=1)
        roomy.note_pass(1)  # checked, under the limit: nothing advised
        assert (roomy.trims, roomy.pass_trims) == (0, 0)
        roomy.close()
        assert MapTrimmer(data_file, limit_bytes=0).trigger.step_bytes == 0  # never checks
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
    assert statm_shared_pages(b"3535 2761 1549 1 0 1596 0\n") == 1549
    assert statm_shared_pages(b"") == 0


def test_the_work_trigger_fires_once_per_step() -> None:
    trigger = WorkTrigger(100)
    assert [trigger.note(n) for n in (60, 30, 10, 99, 1, 250)] == [
        False,
        False,
        True,  # 100 reached: the count starts again
        False,
        True,
        True,  # one large note fires once, it does not bank the surplus
    ]
    assert trigger.pending == 0
    never = WorkTrigger(0)
    assert not any(never.note(1 << 40) for _ in range(3))


def test_a_compaction_is_trimmed_from_inside_its_pass(tmp_path: Path) -> None:
    """Deleting large entries maps their pages (LMDB reads each one's first overflow page
    to free it): the log store reports every `MAP_PASS_EVERY` deletions to the env's hook,
    and the trimmer, past its limit, trims then, inside the compaction's transaction."""
    store = LmdbLogStore.open(tmp_path, 1, "test", LmdbOptions(map_size=64 << 20))
    try:
        count, size = 2 * MAP_PASS_EVERY + 50, 12 << 10  # overflow entries, about 7 MB
        batch = tuple(Entry(1, i, data=bytes([i % 251]) * size) for i in range(1, count + 1))
        store.write(LogBatch(entries=batch, hard_state=HardState(1, 0, count)), sync=False)
        data_file = (tmp_path / "data.mdb").resolve()
        trimmer = MapTrimmer(data_file, limit_bytes=1, step_bytes=MAP_PASS_EVERY << 16)
        mapped_after_trims: list[int] = []

        def hook(nbytes: int) -> None:
            assert nbytes == MAP_PASS_EVERY * MAP_PASS_ENTRY_BYTES
            trimmer.note_pass(nbytes)
            mapped_after_trims.append(_mapped_rss_kb(data_file))

        store.env.map_pass_hook = hook
        store.create_snapshot(count - 1, ConfState(voters=(1,)), b"")
        store.compact(count - 1)
        assert len(mapped_after_trims) == 2 and trimmer.pass_trims == 2
        # A compaction maps at least the first page of each deleted entry, 256 of them
        # between two calls; right after each trim, a handful of pages are left.
        assert all(kb < 256 for kb in mapped_after_trims)
        assert _mapped_rss_kb(data_file) >= 50 * 4  # the last 50 deletions, not trimmed
        assert (store.first_index(), store.entries(count, count + 1)) == (count, [batch[-1]])
        trimmer.close()
    finally:
        store.close()
