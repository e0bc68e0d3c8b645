"""What a commit-merge's image must be before a replica installs it (issue 14, defect 5).

A commit-merge entry carries its source region's final data as a region image
(`cairn.store.ranges`); every replica of the target installs it (`KeyspaceImages.restore`,
or the storage layer's bounded transactions, both through `ImageReader`) and then merges
the two machines (`carve.merge_machines`), which reads the source's system records: its
key counts (added to the target's), applied index and time, and the request table
(`idempotency_table.move_requests`). An exception there stops the target region for good on
that node, so a peer's entry is checked here first, at the edge
(`cairn.runtime.frame_checks.check_admin_command`): the image must be one `ImageReader`
accepts whole (frames, region, every record inside the source), and every system record
the merge reads must decode. The data records' values are taken as they come, as from a
snapshot.
"""

from __future__ import annotations

from cairn.store.carve import merge_target_key
from cairn.store.idempotency_table import check_image_record
from cairn.store.ranges import ImageError, ImageReader
from cairn.store.scope import Scope
from cairn.store.slot import SLOT_COUNT

MAX_COUNT = 1 << 62
"""The largest key count an image may hold: two such add up without leaving 8 bytes."""
_U64_BYTES = 8
_SLOT_BYTES = 2


def check_merge_image(scope: Scope, data: bytes) -> None:
    """`ImageError` unless `data` is an image of region `scope` that installing and
    merging read without an exception (module docstring); empty data is no records."""
    if not data:
        return
    reader = ImageReader(scope)
    system = _SystemRecords(scope)
    low, high = system.bounds
    for key, value in reader.feed(data):
        if low <= key < high:
            system.check(key, value)
    reader.close()


class _SystemRecords:
    """The checks of one region's system records, with its keys worked out once."""

    def __init__(self, scope: Scope) -> None:
        system, slots = scope.system_bounds(), scope.slot_count_bounds()
        assert system is not None and slots is not None and scope.region_id is not None
        self.scope = scope
        self.bounds = system
        self.slots = slots
        self.limits = {
            scope.count_key: MAX_COUNT,
            scope.applied_key: 1 << 64,
            scope.now_key: 1 << 64,
            merge_target_key(scope.region_id): 1 << 64,
        }

    def check(self, key: bytes, value: bytes) -> None:
        """`ImageError` unless system record `key` holds what the merge reads there."""
        limit = self.limits.get(key)
        if limit is not None:
            _u64(key, value, limit)
        elif self.slots[0] <= key < self.slots[1]:
            slot = key[len(self.slots[0]) :]
            if len(slot) != _SLOT_BYTES or int.from_bytes(slot, "big") >= SLOT_COUNT:
                raise ImageError(f"region {self.scope.region_id}: slot count record {key!r}")
            _u64(key, value, MAX_COUNT)
        else:
            try:
                check_image_record(self.scope, key, value)
            except ValueError as exc:
                raise ImageError(f"region {self.scope.region_id}: {exc}") from None


def _u64(key: bytes, value: bytes, limit: int) -> None:
    if len(value) != _U64_BYTES or int.from_bytes(value, "big") >= limit:
        raise ImageError(f"system record {key!r} is not a number below {limit}")
