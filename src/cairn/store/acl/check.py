"""The permission check every command passes before it runs, and its NOPERM replies.

As in Redis 7.0: commands flagged `no_auth` (AUTH, HELLO, QUIT, RESET) are always
allowed; otherwise one selector of the user (the root one or one made by a `(...)`
group) must allow all of the command: its leaf (or, for a command without subcommands,
its first argument: `+select|0`), every key must match a pattern of that selector
granting the access the command needs, and every channel (PUBLISH, SUBSCRIBE ...) must
match a channel pattern of it (PSUBSCRIBE's patterns must equal one literally).

Redis decides read or write access per key from the command's key specs. Cairn's specs
know whether a command writes: a read-only command needs read access to every key, a
writing command write access to every key (Redis asks both of a key a command reads and
writes, such as INCR's; Cairn asks write only: `%W~` grants INCR, which Redis refuses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.store.acl.catalog import Catalog
from cairn.store.acl.selector import READ, WRITE, Selector, fold
from cairn.store.acl.user import User
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
    """Whether `user` may run `argv` whose key arguments are `keys`; None: allowed.

    The root selector or any one of the user's selectors must allow all of it. When
    none does, the denial is Redis's pick: a channel before a key before the command,
    and of the keys (or channels) refused, the one latest in the command."""
    leaf = catalog.leaf_of(list(argv))
    need = WRITE if is_write else READ
    worst: tuple[int, int, bytes] = (_DENIED_COMMAND, 0, b"")
    for selector in (user, *user.selectors):
        found = _check_selector(selector, catalog, leaf, argv, keys, need)
        if found is None:
            return None
        if found[0] > worst[0] or (found[0] == worst[0] and found[1] > worst[1]):
            worst = found
    if worst[0] == _DENIED_COMMAND:
        return Denial("command", leaf)
    return Denial("key" if worst[0] == _DENIED_KEY else "channel", _text(worst[2]))


_DENIED_COMMAND, _DENIED_KEY, _DENIED_CHANNEL = 1, 2, 4
"""Redis's ACL_DENIED_* codes: the higher one is the denial reported."""


def _check_selector(
    sel: Selector,
    catalog: Catalog,
    leaf: str,
    argv: Sequence[bytes],
    keys: Sequence[bytes],
    need: int,
) -> tuple[int, int, bytes] | None:
    """None if `sel` allows the command; else (denial code, position, object)."""
    if not _command_allowed(sel, catalog, leaf, argv):
        return (_DENIED_COMMAND, 0, b"")
    if not sel.allkeys:
        for i, key in enumerate(keys):
            if not _key_allowed(sel, key, need):
                return (_DENIED_KEY, i + 1, key)
    if not sel.allchannels:
        name = leaf.split("|", 1)[0]
        for i, channel in enumerate(_channels(name, argv)):
            if not _channel_allowed(sel, channel, name in PATTERN_COMMANDS):
                return (_DENIED_CHANNEL, i + 1, channel)
    return None


def _command_allowed(sel: Selector, catalog: Catalog, leaf: str, argv: Sequence[bytes]) -> bool:
    """The command's bit, or (a command without subcommands) an allowed first argument."""
    if leaf in sel.allowed or (sel.all_future and leaf not in catalog.categories):
        return True
    allowed_args = sel.firstargs.get(leaf)
    if not allowed_args or len(argv) < 2:
        return False
    first = argv[1].lower()
    return any(fold(arg) == first for arg in allowed_args)


def _key_allowed(sel: Selector, key: bytes, need: int) -> bool:
    return any(perms & need == need and stringmatch(pattern, key) for pattern, perms in sel.keys)


def _channels(name: str, argv: Sequence[bytes]) -> Sequence[bytes]:
    if name in PATTERN_COMMANDS:
        return argv[1:]
    where = CHANNEL_COMMANDS.get(name)
    if where is None or len(argv) < 2:
        return ()
    return argv[1:2] if where == 1 else argv[1:]


def _channel_allowed(sel: Selector, channel: bytes, is_pattern: bool) -> bool:
    if is_pattern:
        return channel in sel.channels
    return any(stringmatch(p, channel) for p in sel.channels)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")
