"""ACL users: Redis 7.0's ACL SETUSER rules, and the canonical rule string of a user.

Theory of operation. A `User` is mutable while rules apply (`apply_rules` works on a
copy and returns it only when every rule is valid, as ACL SETUSER changes nothing on
an error). Its command permissions are Redis's bitmap as a set of allowed leaves
(`cairn.store.acl.catalog`) plus `all_future`, the reserved bit `+@all` sets: a user
made with `+@all` may also run commands added later. `describe` writes the user back as
rules in Redis's canonical order (flags, passwords, keys, channels, commands); command
rules are rebuilt from the bitmap as Redis does (`+@all` or `-@all`, then each category
the user holds more than half of (or lacks more than half of), then single commands to
make up the difference, here in name order where Redis follows its hash table's order).
Parsing a description gives the same user back: the description is what the cluster
replicates (`cairn.placement`), and every node parses it into its own table.

Selectors (`(...)`) and first-argument rules (`+select|0`) are not supported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cairn.store.acl.catalog import CATEGORIES, Catalog

READ = 1
WRITE = 2
ALL_PERMS = READ | WRITE

ERR_UNKNOWN = "Unknown command or category name in ACL"
ERR_SYNTAX = "Syntax error"
ERR_ALLKEYS = (
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does "
    "not have any effect. Try 'resetkeys' to start with an empty list of patterns"
)
ERR_ALLCHANNELS = (
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and "
    "does not have any effect. Try 'resetchannels' to start with an empty list of channels"
)
ERR_NO_PASSWORD = "The password you are trying to remove from the user does not exist"
ERR_HASH = (
    "The password hash must be exactly 64 characters and contain only lowercase "
    "hexadecimal characters"
)
ERR_SUBCOMMAND_ARG = "Allowing first-arg of a subcommand is not supported"
ERR_SELECTORS = "selectors are not supported by Cairn"
ERR_FIRST_ARG = "first-argument rules (command|argument) are not supported by Cairn"
_HEX = frozenset("0123456789abcdef")


class AclRuleError(ValueError):
    """A rule ACL SETUSER refuses: `rule` and Redis's `reason`."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"Error in ACL SETUSER modifier '{rule}': {reason}")
        self.rule = rule
        self.reason = reason


@dataclass(slots=True)
class User:
    """One ACL user (see the module docstring)."""

    name: str
    enabled: bool = False
    nopass: bool = False
    sanitize: str = ""
    """"", "sanitize-payload" or "skip-sanitize-payload" (flags only: no DUMP/RESTORE)."""
    passwords: list[str] = field(default_factory=list)
    """SHA-256 hex digests, in the order they were added."""
    allkeys: bool = False
    keys: list[tuple[bytes, int]] = field(default_factory=list)
    """(pattern, READ|WRITE) in the order added; a pattern given twice ORs its flags."""
    allchannels: bool = False
    channels: list[bytes] = field(default_factory=list)
    allowed: set[str] = field(default_factory=set)
    """The leaves (commands, subcommands) the user may run."""
    all_future: bool = False

    def copy(self) -> User:
        """A deep enough copy to apply rules to."""
        return replace(
            self,
            passwords=list(self.passwords),
            keys=list(self.keys),
            channels=list(self.channels),
            allowed=set(self.allowed),
        )

    def flags(self) -> list[str]:
        """The flags ACL GETUSER lists, in Redis's order."""
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.sanitize:
            out.append(self.sanitize)
        return out

    def check_password(self, password: bytes) -> bool:
        """Whether `password` opens this user (enabled users only)."""
        if not self.enabled:
            return False
        return self.nopass or hash_password(password) in self.passwords


def hash_password(password: bytes) -> str:
    """A password as Redis stores it: its SHA-256 in lowercase hex."""
    return hashlib.sha256(password).hexdigest()


def new_user(name: str) -> User:
    """A user ACL SETUSER creates: off, no passwords, keys, channels or commands."""
    return User(name)


def default_user(password: str | None, catalog: Catalog) -> User:
    """The `default` user of a node configured with `password` (None: nopass)."""
    user = User("default", enabled=True, allkeys=True, allchannels=True)
    _allcommands(user, catalog)
    if password is None:
        user.nopass = True
    else:
        user.passwords.append(hash_password(password.encode()))
    return user


def apply_rules(user: User, rules: Sequence[bytes], catalog: Catalog) -> User:
    """A copy of `user` with every rule applied; `AclRuleError` at the first bad one."""
    out = user.copy()
    for rule in rules:
        text = rule.decode("utf-8", "surrogateescape")
        _apply(out, text, rule, catalog)
    return out


def _apply(user: User, op: str, raw: bytes, catalog: Catalog) -> None:
    low = op.lower()
    simple = _SIMPLE.get(low)
    if simple is not None:
        simple(user, catalog)
        return
    if op.startswith("(") or op.endswith(")"):
        raise AclRuleError(op, ERR_SELECTORS)
    head = op[:1]
    if head in (">", "<", "#", "!"):
        _password_rule(user, op, raw)
    elif head in ("~", "%"):
        _key_rule(user, op, raw)
    elif head == "&":
        if user.allchannels:
            raise AclRuleError(op, ERR_ALLCHANNELS)
        pattern = raw[1:]
        if b" " in pattern:
            raise AclRuleError(op, ERR_SYNTAX)  # the description is space-separated
        if pattern not in user.channels:
            user.channels.append(pattern)
    elif head in ("+", "-"):
        _command_rule(user, op, catalog)
    else:
        raise AclRuleError(op, ERR_SYNTAX)


def _on(user: User, catalog: Catalog) -> None:
    user.enabled = True


def _off(user: User, catalog: Catalog) -> None:
    user.enabled = False


def _nopass(user: User, catalog: Catalog) -> None:
    user.nopass = True
    user.passwords.clear()


def _resetpass(user: User, catalog: Catalog) -> None:
    user.nopass = False
    user.passwords.clear()


def _allkeys(user: User, catalog: Catalog) -> None:
    user.allkeys = True
    user.keys.clear()


def _resetkeys(user: User, catalog: Catalog) -> None:
    user.allkeys = False
    user.keys.clear()


def _allchannels(user: User, catalog: Catalog) -> None:
    user.allchannels = True
    user.channels.clear()


def _resetchannels(user: User, catalog: Catalog) -> None:
    user.allchannels = False
    user.channels.clear()


def _allcommands(user: User, catalog: Catalog) -> None:
    user.allowed = set(catalog.categories)
    user.all_future = True


def _nocommands(user: User, catalog: Catalog) -> None:
    user.allowed = set()
    user.all_future = False


def _sanitize(user: User, catalog: Catalog) -> None:
    user.sanitize = "sanitize-payload"


def _skip_sanitize(user: User, catalog: Catalog) -> None:
    user.sanitize = "skip-sanitize-payload"


def _reset(user: User, catalog: Catalog) -> None:
    _resetpass(user, catalog)
    _resetkeys(user, catalog)
    _resetchannels(user, catalog)
    user.enabled = False
    _nocommands(user, catalog)
    user.sanitize = "sanitize-payload"


_SIMPLE = {
    "on": _on,
    "off": _off,
    "nopass": _nopass,
    "resetpass": _resetpass,
    "allkeys": _allkeys,
    "~*": _allkeys,
    "resetkeys": _resetkeys,
    "allchannels": _allchannels,
    "&*": _allchannels,
    "resetchannels": _resetchannels,
    "allcommands": _allcommands,
    "+@all": _allcommands,
    "nocommands": _nocommands,
    "-@all": _nocommands,
    "sanitize-payload": _sanitize,
    "skip-sanitize-payload": _skip_sanitize,
    "reset": _reset,
}


def _password_rule(user: User, op: str, raw: bytes) -> None:
    head = op[0]
    if head in (">", "<"):
        digest = hash_password(raw[1:])
    else:
        digest = op[1:]
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise AclRuleError(op, ERR_HASH)
    if head in (">", "#"):
        if digest not in user.passwords:
            user.passwords.append(digest)
        user.nopass = False
    elif digest in user.passwords:
        user.passwords.remove(digest)
    else:
        raise AclRuleError(op, ERR_NO_PASSWORD)


def _key_rule(user: User, op: str, raw: bytes) -> None:
    if user.allkeys:
        raise AclRuleError(op, ERR_ALLKEYS)
    perms, offset = ALL_PERMS, 1
    if op[0] == "%":
        perms = 0
        while offset < len(raw):
            c = chr(raw[offset]).upper()
            offset += 1
            if c == "R" and not perms & READ:
                perms |= READ
            elif c == "W" and not perms & WRITE:
                perms |= WRITE
            elif c == "~":
                break
            else:
                raise AclRuleError(op, ERR_SYNTAX)
        else:
            raise AclRuleError(op, ERR_SYNTAX)  # no '~'
    if not perms or offset == len(raw):
        raise AclRuleError(op, ERR_SYNTAX)
    pattern = raw[offset:]
    if b" " in pattern:
        raise AclRuleError(op, ERR_SYNTAX)  # the description is space-separated
    for i, (known, flags) in enumerate(user.keys):
        if known == pattern:
            user.keys[i] = (known, flags | perms)
            return
    user.keys.append((pattern, perms))


def _command_rule(user: User, op: str, catalog: Catalog) -> None:
    allow = op[0] == "+"
    if op[1:2] == "@":
        category = op[2:].lower()
        if category not in CATEGORIES:
            raise AclRuleError(op, ERR_UNKNOWN)
        leaves: Sequence[str] | frozenset[str] = catalog.category_bits(category)
    else:
        name = op[1:]
        if "|" in name and allow:
            parent, sub = name.lower().rsplit("|", 1)
            if catalog.resolve(parent) is None:
                raise AclRuleError(op, ERR_UNKNOWN)
            if "|" in parent:
                raise AclRuleError(op, ERR_SUBCOMMAND_ARG)
            if not sub:
                raise AclRuleError(op, ERR_SYNTAX)
            if parent not in catalog.containers:
                raise AclRuleError(op, ERR_FIRST_ARG)
        found = catalog.resolve(name)
        if found is None:
            raise AclRuleError(op, ERR_UNKNOWN)
        leaves = list(found)
    if allow:
        user.allowed.update(leaves)
    else:
        user.allowed.difference_update(leaves)


# -- the canonical description ---------------------------------------------------------


def describe(user: User, catalog: Catalog) -> str:
    """The user as rules (ACL LIST without `user <name> `), in Redis's order."""
    parts = user.flags()
    parts.extend(f"#{p}" for p in user.passwords)
    for item in (key_rules(user), channel_rules(user), command_rules(user, catalog)):
        if item:
            parts.append(item)
    return " ".join(parts)


def key_rules(user: User) -> str:
    """The key patterns as rules (`~*`, `~app:*`, `%R~r:*`)."""
    if user.allkeys:
        return "~*"
    return " ".join(_key_rule_text(pattern, perms) for pattern, perms in user.keys)


def _key_rule_text(pattern: bytes, perms: int) -> str:
    text = pattern.decode("utf-8", "surrogateescape")
    if perms == ALL_PERMS:
        return f"~{text}"
    return "%" + ("R" if perms & READ else "") + ("W" if perms & WRITE else "") + "~" + text


def channel_rules(user: User, *, for_getuser: bool = False) -> str:
    """The channel patterns as rules (ACL LIST prefixes them with `resetchannels`)."""
    if user.allchannels:
        return "&*"
    pats = [f"&{p.decode('utf-8', 'surrogateescape')}" for p in user.channels]
    return " ".join(pats if for_getuser else ["resetchannels", *pats])


def command_rules(user: User, catalog: Catalog) -> str:
    """The command permissions as rules, rebuilt from the allowed set as Redis 7.0 does:
    `+@all` (or `-@all`), then greedily the category that covers the most of what is
    left with the fewest exceptions, then single commands for the difference."""
    additive = not user.all_future
    rules = ["-@all" if additive else "+@all"]
    fake = set() if additive else set(catalog.categories)
    temp = set(user.allowed)
    applied: set[str] = set()
    while True:
        best, mindiff, maxsame = "", 1 << 62, 0
        for category in CATEGORIES:
            if category in applied:
                continue
            flagged = catalog.in_category(category)
            on = sum(1 for m in flagged if m in temp)
            off = len(flagged) - on
            diff, same = (off, on) if additive else (on, off)
            if same > diff and (diff < mindiff or (diff == mindiff and same > maxsame)):
                best, mindiff, maxsame = category, diff, same
        if not best:
            break
        bits = catalog.category_bits(best)
        if additive:
            fake.update(bits)
            temp.difference_update(bits)
        else:
            fake.difference_update(bits)
            temp.update(bits)
        rules.append(("+@" if additive else "-@") + best)
        applied.add(best)
    rules.extend(_single_rules(user.allowed, fake, catalog))
    return " ".join(rules)


def _single_rules(allowed: set[str], fake: set[str], catalog: Catalog) -> list[str]:
    """`+name`/`-name` wherever `fake` differs from `allowed`: each command, then its
    subcommands (naming a container sets its subcommands too). Redis walks its command
    table's hash order; Cairn walks names in order."""
    out = []
    for name in catalog.top_level():
        for item in (name, *catalog.containers.get(name, ())):
            want = item in allowed
            if want == (item in fake):
                continue
            out.append(("+" if want else "-") + item)
            changed = (item, *catalog.containers.get(item, ()))
            if want:
                fake.update(changed)
            else:
                fake.difference_update(changed)
    return out


def parse_description(name: str, text: str, catalog: Catalog) -> User:
    """The user a `describe` string stands for (what a node adopts from the cluster).

    Rules naming commands this node does not know are skipped (a newer node's rules)."""
    user = new_user(name)
    for rule in text.split(" "):
        if not rule:
            continue
        try:
            _apply(user, rule, rule.encode("utf-8", "surrogateescape"), catalog)
        except AclRuleError:
            continue
    return user
