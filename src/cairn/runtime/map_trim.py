"""Keeping LMDB's mapped data file out of the node's resident set.

Theory of operation. LMDB reads every record through a read-only shared memory map of
``data.mdb`` (the node's environment has no ``MDB_WRITEMAP``: writes go through
``pwrite``). Each page a read touches stays mapped into the process and counts in its RSS
as ``RssFile``, until the whole data file is (1.2 GB after the reclaim of a 13-million-
record value walked every page: docs/benchmarks.md). ``MDB_NORDAHEAD`` keeps a fault
from reading its neighbours from disk, but the kernel still maps those already in the page
cache, up to 64 KiB around the fault (``fault_around_bytes``), and nothing ever unmaps a
page once touched.

Those pages are the kernel's page cache of the data file: clean, shared, and dropped under
memory pressure whether mapped or not. What grows is the figure a supervisor watching RSS
sees. `MapTrimmer` bounds it: every `interval_s` it reads the process's file-backed
resident set (``/proc/self/statm``'s third field, ``RssFile`` plus ``RssShmem``, by one
``pread`` of a descriptor kept open: about 2 microseconds, where reading
``/proc/self/status`` takes 0.15 to 0.7 ms) and, past `limit_bytes`, advises
``MADV_DONTNEED`` over the data file's mappings (found in ``/proc/self/maps``). On a
shared file mapping that only drops this process's page-table entries: the pages stay in
the page cache, nothing is written or lost, and the next read of a page maps it again (a
minor fault, no disk read while the kernel keeps the page). The hot pages (the B-tree's
upper levels, the pages a workload keeps reading) come back at once; what stays out is the
cold bulk a large value or a reclaim walked through once.

The check is that cheap so it can run often: a reclaim's cursor walks map up to about 40
MB a second of the file, past the limit by as much between two checks a second apart.
Checking on a timer is not enough on its own, though: a pass that runs without yielding to
the event loop maps pages faster than that. Compacting a Raft log of 10,000 entries of
10-16 KB (variadic writes of 1,000 elements) deletes them in one write transaction, and
LMDB reads the first overflow page of each to free it, the kernel mapping the cached pages
around each: about 155 MB mapped in a tenth of a
second, on every replica at once (docs/benchmarks.md, "RSS at every moment"). So such a
pass reports its work as it goes (`LmdbEnv.map_pass_hook`, wired to `note_pass`: the bytes
of the map it may have touched), and once `step_bytes` of it have accumulated the trimmer
checks then and there, on the pass's own thread, inside its transaction. That is safe: the
map stays the same mapping for as long as the pass runs (the environment cannot close under
it), a write transaction without ``MDB_WRITEMAP`` holds its changed pages in its own heap
copies, and a page the pass reads again after the advice faults back in with the same
bytes (clean page cache, or what a spill already wrote). `WorkTrigger` is that counting,
kept apart as pure logic.

A writable mapping (``MDB_WRITEMAP``) is never advised; on anything but Linux the trimmer
finds no mapping and does nothing. The cost of advising (2 CPUs at load 21,
docs/benchmarks.md): 62 to 104 ms for a 1 GB map all resident, under 5 ms with little
resident; with the limit at 64 MiB and checks every `step_bytes` of a pass and every tenth
of a second, a trim finds at most about 100 MB resident (under 10 ms of the loop).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4
"""Linux's value (``mmap.MADV_DONTNEED`` where the platform defines it)."""
DEFAULT_INTERVAL_S = 0.1
"""How often the resident set is checked on a timer (a check: about 2 microseconds)."""
DEFAULT_STEP_BYTES = 16 << 20
"""How much of the map a long pass may touch between two checks (`limits.map_trim_step_bytes`)."""
PAGE = mmap.PAGESIZE


@dataclass(frozen=True, slots=True)
class Mapping:
    """One mapping of the data file in this process: its address range and file offset."""

    start: int
    end: int
    offset: int
    writable: bool


def parse_maps(text: str, path: Path) -> list[Mapping]:
    """The mappings of file `path` listed in `text` (the format of ``/proc/PID/maps``)."""
    wanted = str(path)
    found = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[5] != wanted:
            continue
        start, _, end = parts[0].partition("-")
        perms = parts[1]
        found.append(Mapping(int(start, 16), int(end, 16), int(parts[2], 16), "w" in perms))
    return found


def statm_shared_pages(text: bytes) -> int:
    """The third field of ``/proc/PID/statm`` (resident file-backed and shared-memory
    pages); 0 when the text has no such field."""
    fields = text.split()
    return int(fields[2]) if len(fields) > 2 else 0


def _libc_madvise() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    madvise = getattr(libc, "madvise", None)
    if madvise is None:
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


class WorkTrigger:
    """Says when a pass has done enough work to check the resident set again: after
    `step_bytes` of the map noted since the last time it said so (0: never)."""

    def __init__(self, step_bytes: int) -> None:
        self.step_bytes = step_bytes
        self.pending = 0
        """Bytes noted since the trigger last fired."""

    def note(self, nbytes: int) -> bool:
        """Count `nbytes` more of the map a pass may have touched; whether to check now
        (the count then starts again)."""
        if self.step_bytes <= 0:
            return False
        self.pending += nbytes
        if self.pending < self.step_bytes:
            return False
        self.pending = 0
        return True


class MapTrimmer:
    """Drops the data file's pages from this process's resident set once its file-backed
    RSS passes `limit_bytes` (0: never): every `interval_s`, and after every `step_bytes`
    a long pass reports (`note_pass`)."""

    def __init__(
        self,
        data_file: Path,
        limit_bytes: int,
        interval_s: float = DEFAULT_INTERVAL_S,
        step_bytes: int = DEFAULT_STEP_BYTES,
    ):
        self.data_file = data_file.resolve()
        self.limit_bytes = limit_bytes
        self.interval_s = interval_s
        self.trigger = WorkTrigger(step_bytes if limit_bytes > 0 else 0)
        self.trims = 0
        """How many times the map was advised (INFO-style counter, for tests and logs)."""
        self.pass_trims = 0
        """How many of those a long pass's work triggered (`note_pass`)."""
        self._madvise = _libc_madvise()
        self._statm: int | None = None
        """A descriptor of /proc/self/statm, opened by the first check (`close`)."""

    def rss_file_bytes(self) -> int:
        """This process's file-backed (and shared-memory) resident set: the data file's
        mapped pages and the libraries', in bytes (``/proc/self/statm``'s third field,
        re-generated by each ``pread`` at offset 0)."""
        if self._statm is None:
            self._statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        return statm_shared_pages(os.pread(self._statm, 256, 0)) * PAGE

    def close(self) -> None:
        """Close the descriptor the checks read (the next check opens it again)."""
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None

    def mappings(self) -> list[Mapping]:
        """The data file's mappings in this process."""
        try:
            text = Path("/proc/self/maps").read_text()
        except OSError:
            return []
        return parse_maps(text, self.data_file)

    def trim(self) -> int:
        """Advise ``MADV_DONTNEED`` over every read-only mapping of the data file, up to
        the file's size; the bytes advised."""
        if self._madvise is None:
            return 0
        try:
            size = self.data_file.stat().st_size
        except OSError:
            return 0
        advised = 0
        for m in self.mappings():
            if m.writable or m.offset >= size:
                continue
            length = min(m.end - m.start, -(-(size - m.offset) // PAGE) * PAGE)
            if self._madvise(m.start, length, MADV_DONTNEED) == 0:
                advised += length
            else:
                log.warning("madvise of the LMDB map failed: errno %d", ctypes.get_errno())
        self.trims += 1
        return advised

    def due(self) -> bool:
        """Whether the resident set is past the limit."""
        return self.limit_bytes > 0 and self.rss_file_bytes() > self.limit_bytes

    def note_pass(self, nbytes: int) -> None:
        """A long pass (on the thread that uses the environment, inside it) may have
        touched `nbytes` more of the map: check, and trim if due, once `step_bytes` of
        it have accumulated (see the module docstring for why this is safe mid-pass)."""
        if not self.trigger.note(nbytes) or self._madvise is None:
            return
        try:
            if self.due():
                self.trim()
                self.pass_trims += 1
        except OSError as exc:  # no /proc here: nothing to bound
            log.warning("not trimming the LMDB map: %s", exc)
            self.trigger.step_bytes = 0

    async def run(self) -> None:
        """Check every `interval_s`, trimming when `due`; until cancelled. The trim runs on
        the loop, like the environment's close: a map unmapped between reading
        ``/proc/self/maps`` and advising it could be replaced by heap memory, which
        ``MADV_DONTNEED`` would zero (advising at most a few tens of MB of mapped pages
        takes milliseconds)."""
        if self.limit_bytes <= 0 or self._madvise is None:
            return
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    if self.due():
                        self.trim()
                except OSError as exc:  # no /proc here: nothing to bound
                    log.warning("not trimming the LMDB map: %s", exc)
                    return
        finally:
            self.close()
