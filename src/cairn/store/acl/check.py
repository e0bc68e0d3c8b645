"""The permission check every command passes before it runs, and its NOPERM replies.

As in Redis 7.0: commands flagged `no_auth` (AUTH, HELLO, QUIT, RESET) are always
allowed; otherwise the command's leaf must be allowed, every key must match a pattern
granting the access the command needs, and every channel (PUBLISH, SUBSCRIBE ...) must
match a channel pattern (PSUBSCRIBE's patterns must equal one literally).

Redis decides read or write access per key from the command's key specs. Cairn's specs
know whether a command writes: a read-only command needs read access to every key, a
writing command write access to every key (Redis asks both of a key a command reads and
writes, such as INCR's; Cairn asks write only: `%W~` grants INCR, which Redis refuses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.store.acl.catalog import Catalog
from cairn.store.acl.user import READ, WRITE, User
from cairn.store.glob import stringmatch

NOPERM_KEY = "NOPERM this user has no permissions to access one of the keys used as arguments"
NOPERM_CHANNEL = (
    "NOPERM this user has no permissions to access one of the channels used as arguments"
)

CHANNEL_COMMANDS = {"publish": 1, "spublish": 1, "subscribe": -1, "ssubscribe": -1}
"""Commands whose channels are checked: the one at argv[1], or (-1) all from argv[1]."""
PATTERN_COMMANDS = frozenset({"psubscribe"})


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a command is refused: `reason` is "command", "key" or "channel"; `object`
    the command's leaf, the key or the channel (as ACL LOG shows them)."""

    reason: str
    object: str

    def error_text(self) -> str:
        """The NOPERM error's text."""
        if self.reason == "command":
            return f"NOPERM this user has no permissions to run the '{self.object}' command"
        return NOPERM_KEY if self.reason == "key" else NOPERM_CHANNEL

    def dryrun_text(self) -> str:
        """ACL DRYRUN's answer for it."""
        kind = {"command": "run", "key": "access", "channel": "access"}[self.reason]
        noun = {"command": "command", "key": "key", "channel": "channel"}[self.reason]
        return f"This user has no permissions to {kind} the '{self.object}' {noun}"


def unrestricted(user: User, catalog: Catalog) -> bool:
    """Whether `user` may run everything (the check can be skipped)."""
    return (
        user.all_future
        and user.allkeys
        and user.allchannels
        and len(user.allowed) == len(catalog.categories)
    )


def check(
    user: User,
    catalog: Catalog,
    argv: Sequence[bytes],
    keys: Sequence[bytes],
    is_write: bool,
) -> Denial | None:
    """Whether `user` may run `argv` whose key arguments are `keys`; None: allowed."""
    leaf = catalog.leaf_of(list(argv))
    if leaf not in user.allowed and not (user.all_future and leaf not in catalog.categories):
        return Denial("command", leaf)
    if not user.allkeys:
        need = WRITE if is_write else READ
        for key in keys:
            if not _key_allowed(user, key, need):
                return Denial("key", _text(key))
    if not user.allchannels:
        name = leaf.split("|", 1)[0]
        for channel in _channels(name, argv):
            if not _channel_allowed(user, channel, name in PATTERN_COMMANDS):
                return Denial("channel", _text(channel))
    return None


def _key_allowed(user: User, key: bytes, need: int) -> bool:
    return any(perms & need == need and stringmatch(pattern, key) for pattern, perms in user.keys)


def _channels(name: str, argv: Sequence[bytes]) -> Sequence[bytes]:
    if name in PATTERN_COMMANDS:
        return argv[1:]
    where = CHANNEL_COMMANDS.get(name)
    if where is None or len(argv) < 2:
        return ()
    return argv[1:2] if where == 1 else argv[1:]


def _channel_allowed(user: User, channel: bytes, is_pattern: bool) -> bool:
    if is_pattern:
        return channel in user.channels
    return any(stringmatch(p, channel) for p in user.channels)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")
