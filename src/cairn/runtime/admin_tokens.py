"""Admin API tokens: random bearer tokens with a role, kept hashed in a 0600 JSON file.

Theory of operation. A token is `cairn_` followed by 32 random bytes (urlsafe base64). Only
its SHA-256 is stored: a token is high-entropy, so a plain digest cannot be reversed or
guessed, and a presented token is checked by hashing it and comparing the digest with every
stored one in constant time (`hmac.compare_digest`, no early exit). Each entry also has a
short random `id` (what logs and `cairn ctl token list` show, never the token), a `name`
and a `role`:

- `read`: every `GET` (status, nodes, regions, events, `/metrics`);
- `admin`: that, and the state changes (drain, placement).

The file is JSON, `{"version": 1, "tokens": [...]}`, written by `cairn ctl token ...` (or
the dev tooling) atomically (a temporary file renamed over it, mode 0600, under a lock
file so two writers cannot lose each other's change). A node reads it at start and again
whenever it changes (its inode, size or modification time), so a revoked token stops
working on the next request, without a restart. Tokens are not replicated: the operator
copies the same file to every node (it holds only digests). A file that group or others
may write, or that is malformed, is refused: at start with `TokenFileError`, later by
answering every request 401 until it is fixed (fail closed), with the reason in the log.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("cairn.admin")

TOKEN_PREFIX = "cairn_"
TOKEN_BYTES = 32
FILE_VERSION = 1
MAX_FILE_BYTES = 1 << 20
"""A tokens file larger than this is refused (a few thousand tokens fit easily)."""
MAX_TOKENS = 1000
MAX_NAME_LEN = 100
DEV_TOKENS_FILE = "admin_tokens.json"
"""The tokens file of a dev or test cluster, in its root directory."""
DEV_TOKEN_FILE = "admin.token"
"""Beside it, the clear admin token `cairn ctl` reads when given no other (mode 0600)."""


class Role(enum.StrEnum):
    """What a token may do."""

    READ = "read"
    ADMIN = "admin"


class TokenFileError(Exception):
    """The tokens file cannot be used; the message says why and where."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One stored token: never the token itself, only its SHA-256 (hex)."""

    id: str
    name: str
    role: Role
    sha256: str
    created: int
    """Unix time, seconds."""

    def describe(self) -> str:
        """How logs name the holder: id and name, never the token."""
        return self.id if self.name == self.id else f"{self.id} ({self.name})"


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """The SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def match(entries: tuple[TokenEntry, ...], token: str) -> TokenEntry | None:
    """The entry `token` belongs to, comparing with every entry in constant time."""
    presented = digest(token).encode()
    found = None
    for entry in entries:
        if hmac.compare_digest(presented, entry.sha256.encode()):
            found = entry
    return found


# -- the file ---------------------------------------------------------------------------


def read_tokens(path: Path) -> tuple[TokenEntry, ...]:
    """The entries of the tokens file at `path` (`TokenFileError` if unusable)."""
    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TokenFileError(f"admin tokens file {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TokenFileError(
            f"admin tokens file {path}: group or others may write it (chmod 600 {path})"
        )
    if len(raw) > MAX_FILE_BYTES:
        raise TokenFileError(f"admin tokens file {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return parse_tokens(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"admin tokens file {path}: {exc}") from None


def parse_tokens(doc: Any) -> tuple[TokenEntry, ...]:
    """Entries from the decoded JSON of a tokens file (`ValueError` naming the problem)."""
    if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
        raise ValueError(f'expected {{"version": {FILE_VERSION}, "tokens": [...]}}')
    items = doc.get("tokens")
    if not isinstance(items, list) or len(items) > MAX_TOKENS:
        raise ValueError(f"tokens: expected a list of at most {MAX_TOKENS} entries")
    entries = tuple(_entry(i, item) for i, item in enumerate(items))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("tokens: two entries have the same id")
    return entries


def _entry(index: int, item: Any) -> TokenEntry:
    where = f"tokens[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object")
    texts = {k: item.get(k) for k in ("id", "name", "role", "sha256")}
    for key, value in texts.items():
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_LEN:
            raise ValueError(f"{where}.{key}: expected a non-empty string")
    created = item.get("created", 0)
    if not isinstance(created, int) or isinstance(created, bool):
        raise ValueError(f"{where}.created: expected an integer")
    sha = str(texts["sha256"])
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"{where}.sha256: expected 64 lowercase hex digits")
    try:
        role = Role(str(texts["role"]))
    except ValueError:
        raise ValueError(f"{where}.role: expected 'read' or 'admin'") from None
    return TokenEntry(str(texts["id"]), str(texts["name"]), role, sha, created)


def write_tokens(path: Path, entries: tuple[TokenEntry, ...]) -> None:
    """Replace the tokens file atomically, mode 0600."""
    doc = {"version": FILE_VERSION, "tokens": [asdict(e) for e in entries]}
    text = json.dumps(doc, indent=2) + "\n"
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold `<path>.lock` exclusively: one writer of the tokens file at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _current(path: Path) -> tuple[TokenEntry, ...]:
    return read_tokens(path) if path.exists() else ()


def create_token(path: Path, role: Role, name: str = "") -> tuple[str, TokenEntry]:
    """Add a new token to the file (created if missing); the token, shown once, and its
    entry."""
    if len(name) > MAX_NAME_LEN:
        raise TokenFileError(f"a token name is at most {MAX_NAME_LEN} characters")
    with _locked(path):
        entries = _current(path)
        if len(entries) >= MAX_TOKENS:
            raise TokenFileError(f"admin tokens file {path}: already {MAX_TOKENS} tokens")
        taken = {e.id for e in entries}
        token_id = secrets.token_hex(4)
        while token_id in taken:
            token_id = secrets.token_hex(4)
        token = new_token()
        entry = TokenEntry(token_id, name or token_id, role, digest(token), int(time.time()))
        write_tokens(path, (*entries, entry))
    return token, entry


def revoke_token(path: Path, which: str) -> tuple[TokenEntry, ...]:
    """Remove the tokens whose id or name is `which`; those removed (`TokenFileError` if
    none)."""
    with _locked(path):
        entries = _current(path)
        gone = tuple(e for e in entries if which in (e.id, e.name))
        if not gone:
            raise TokenFileError(f"no token with id or name {which!r} in {path}")
        write_tokens(path, tuple(e for e in entries if e not in gone))
    return gone


def ensure_dev_token(root: Path) -> str:
    """The admin token of a dev or test cluster under `root`: reused from
    `root/admin.token` while it still matches `root/admin_tokens.json`, else created there."""
    tokens_file, token_file = root / DEV_TOKENS_FILE, root / DEV_TOKEN_FILE
    if token_file.exists() and tokens_file.exists():
        token = token_file.read_text().strip()
        found = match(read_tokens(tokens_file), token)
        if found is not None and found.role is Role.ADMIN:
            return token
    token, _ = create_token(tokens_file, Role.ADMIN, "dev")
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


# -- what a node holds ------------------------------------------------------------------


class TokenStore:
    """A node's view of its tokens file, read again whenever the file changes.

    With no path, no token is known and every request is refused.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: tuple[TokenEntry, ...] = ()
        self._seen: tuple[int, int, int] | None = None
        self.problem: str | None = None
        """Why the file cannot be used right now (every token is then refused)."""
        if path is not None:
            self._entries = read_tokens(path)
            self._seen = self._stamp()

    def __len__(self) -> int:
        self._refresh()
        return len(self._entries)

    def authenticate(self, token: str) -> TokenEntry | None:
        """The entry of `token`, or None if it is unknown (or the file is unusable)."""
        self._refresh()
        return match(self._entries, token)

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _refresh(self) -> None:
        if self.path is None:
            return
        stamp = self._stamp()
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            self._entries = read_tokens(self.path)
            self.problem = None
            log.info("admin tokens reloaded from %s: %d token(s)", self.path, len(self._entries))
        except TokenFileError as exc:
            self._entries, self.problem = (), str(exc)
            log.error("%s: refusing every admin request until it is fixed", exc)
