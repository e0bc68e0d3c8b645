"""The on-disk format of a `cairn ctl backup` directory, and its verification.

A backup directory holds one data file per region and `manifest.json`:

* a data file (`region-<id>.cbk`) is `MAGIC`, then one record per key: the key's length
  (u32, big-endian), the key, its absolute expiry in Unix ms (u64; 0: none), the DUMP
  payload's length (u32) and the payload (Redis 7.0's serialization, `cairn.store.rdb`);
* the manifest names the format and version, the cluster, when and how the cut was taken,
  and per region its key range, file, key count, byte count and SHA-256; its own
  `checksum` is the SHA-256 of the rest of it (canonical JSON), so a damaged manifest is
  told from a damaged data file.

`verify` checks everything before a restore writes anything and raises `DamagedBackupError`
naming the file and what does not match. Every length read from a file is checked against
what is left of it before anything is allocated.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

FORMAT = "cairn-backup"
VERSION = 1
MAGIC = b"CAIRNBK1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
MAX_KEY_BYTES = 512 << 20
MAX_PAYLOAD_BYTES = 1 << 32
_FILE_NAME = re.compile(r"region-[0-9]{1,20}\.cbk")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_READ_BLOCK = 1 << 20


class DamagedBackupError(Exception):
    """The backup cannot be restored as it is: the message names the file and the damage."""


@dataclass(frozen=True, slots=True)
class Record:
    """One key of a backup."""

    key: bytes
    expire_ms: int
    """Absolute expiry in Unix ms; 0: none."""
    payload: bytes


def file_name(region_id: int) -> str:
    """The data file of a region."""
    return f"region-{region_id}.cbk"


class RecordWriter:
    """Writes a data file and keeps its SHA-256, byte and key counts."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.keys = 0
        self._write(MAGIC)

    def add(self, key: bytes, expire_ms: int, payload: bytes) -> None:
        """Append one key."""
        head = _U32.pack(len(key)) + key + _U64.pack(expire_ms) + _U32.pack(len(payload))
        self._write(head)
        self._write(payload)
        self.keys += 1

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.sha.update(data)
        self.bytes += len(data)


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """The SHA-256 of the manifest without its `checksum` field, as canonical JSON."""
    rest = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest.json` with its checksum (through a temporary file, then renamed)."""
    doc = dict(manifest, checksum=manifest_checksum(manifest))
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(directory / MANIFEST)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of `directory`, checked for shape and checksum."""
    path = directory / MANIFEST
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise DamagedBackupError(f"{MANIFEST}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise DamagedBackupError(f"{MANIFEST}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedBackupError(f"{MANIFEST}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DamagedBackupError(f"{MANIFEST}: not a Cairn backup manifest")
    if doc.get("version") != VERSION:
        raise DamagedBackupError(
            f"{MANIFEST}: format version {doc.get('version')!r}, this cairn reads {VERSION}"
        )
    if doc.get("checksum") != manifest_checksum(doc):
        raise DamagedBackupError(f"{MANIFEST}: its checksum does not match its contents")
    _check_regions(doc.get("regions"))
    return doc


def _check_regions(regions: object) -> None:
    if not isinstance(regions, list):
        raise DamagedBackupError(f"{MANIFEST}: 'regions' is not a list")
    for r in regions:
        ok = (
            isinstance(r, dict)
            and isinstance(r.get("file"), str)
            and _FILE_NAME.fullmatch(r["file"]) is not None
            and all(isinstance(r.get(k), int) and r[k] >= 0 for k in ("id", "keys", "bytes"))
            and isinstance(r.get("sha256"), str)
        )
        if not ok:
            raise DamagedBackupError(f"{MANIFEST}: a malformed region entry: {str(r)[:200]}")


def verify(directory: Path) -> dict[str, Any]:
    """Check the manifest and every data file (size, SHA-256, records, key count); the
    manifest, or `DamagedBackupError` naming what is damaged."""
    manifest = read_manifest(directory)
    for region in manifest["regions"]:
        _verify_file(directory, region)
    return manifest


def _verify_file(directory: Path, region: dict[str, Any]) -> None:
    name = region["file"]
    path = directory / name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DamagedBackupError(f"{name}: missing ({exc.strerror})") from None
    if size != region["bytes"]:
        raise DamagedBackupError(
            f"{name}: {size} bytes, the manifest says {region['bytes']} (truncated or extended)"
        )
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BLOCK):
            sha.update(block)
    if sha.hexdigest() != region["sha256"]:
        raise DamagedBackupError(
            f"{name}: SHA-256 {sha.hexdigest()} does not match the manifest's {region['sha256']}"
        )
    count = sum(1 for _ in read_records(path))
    if count != region["keys"]:
        raise DamagedBackupError(f"{name}: {count} keys, the manifest says {region['keys']}")


def read_records(path: Path) -> Iterator[Record]:
    """The records of a data file, every length checked against what is left of it."""
    name = path.name
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise DamagedBackupError(f"{name}: not a Cairn backup data file (bad magic)")
        offset = len(MAGIC)
        while offset < size:
            key = _field(f, name, offset, size, MAX_KEY_BYTES)
            offset += 4 + len(key)
            expire = _exact(f, 8, name, offset)
            offset += 8
            payload = _field(f, name, offset, size, MAX_PAYLOAD_BYTES)
            offset += 4 + len(payload)
            yield Record(key, _U64.unpack(expire)[0], payload)


def _field(f: BinaryIO, name: str, offset: int, size: int, most: int) -> bytes:
    (length,) = _U32.unpack(_exact(f, 4, name, offset))
    if length > most or offset + 4 + length > size:
        raise DamagedBackupError(f"{name}: a record at byte {offset} runs past the end of the file")
    return _exact(f, length, name, offset + 4)


def _exact(f: BinaryIO, length: int, name: str, offset: int) -> bytes:
    data = f.read(length)
    if len(data) != length:
        raise DamagedBackupError(f"{name}: truncated at byte {offset + len(data)}")
    return data
