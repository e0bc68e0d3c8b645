"""ACL selectors: the permissions (keys, channels, commands) a user's rules grant.

Theory of operation. Redis 7.0 keeps a user's permissions in selectors: the root one
(the rules given outside parentheses, shown at the top level of ACL GETUSER) and any
number of further ones, each made by one `(...)` group of ACL SETUSER. A command is
allowed when one selector allows all of it: the command, every key and every channel
(`cairn.store.acl.check`). This module is one selector: its rules, as
`ACLSetSelector` applies them, and its description, as `ACLDescribeSelector` writes it.

Command permissions are Redis's bitmap as a set of allowed leaves
(`cairn.store.acl.catalog`) plus `all_future`, the reserved bit `+@all` sets: a
selector made with `+@all` may also run commands added later. First-argument rules
(`+select|0`: SELECT only with 0 as its first argument, for a command without
subcommands) are `firstargs`; as in Redis, a rule that sets or clears a command's bit
(`+select`, `-select`, a category with it, `+@all`, `-@all`) forgets its first
arguments, and a first argument of a command already allowed changes nothing Redis
shows or checks (Cairn does not keep it). Command rules are rebuilt from the bitmap as
Redis does (`+@all` or `-@all`, then each category the selector holds more than half of
(or lacks more than half of), then single commands to make up the difference, here in
name order where Redis follows its hash table's order, each followed by its first
arguments).

The description is what the cluster replicates, so it must read back as the same
selector: patterns and channels never contain a blank (Redis refuses them), first
arguments never a space (Cairn refuses it: Redis takes it, and its ACL LIST line is then
ambiguous), and a rule inside a selector never ends with ')' (Cairn refuses it: the
group would end there when read back).
"""

from __future__ import annotations

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
ERR_SUBCOMMAND_ARG = "Allowing first-arg of a subcommand is not supported"
ERR_FIRST_ARG_SPACE = (
    "Cairn refuses spaces in a first-argument rule (ACL LIST could not be read back)"
)


class AclRuleError(ValueError):
    """A rule ACL SETUSER refuses: `rule` and Redis's `reason` (`message`, when given,
    replaces the whole text: Redis's unmatched-parenthesis error has its own)."""

    def __init__(self, rule: str, reason: str, message: str | None = None) -> None:
        shown = c_string(rule)  # Redis formats it as a C string
        super().__init__(message or f"Error in ACL SETUSER modifier '{shown}': {reason}")
        self.rule = rule
        self.reason = reason


@dataclass(slots=True, kw_only=True)
class Selector:
    """One selector's permissions (see the module docstring)."""

    allkeys: bool = False
    keys: list[tuple[bytes, int]] = field(default_factory=list)
    """(pattern, READ|WRITE) in the order added; a pattern given twice ORs its flags."""
    allchannels: bool = False
    channels: list[bytes] = field(default_factory=list)
    allowed: set[str] = field(default_factory=set)
    """The leaves (commands, subcommands) the selector may run."""
    all_future: bool = False
    firstargs: dict[str, list[str]] = field(default_factory=dict)
    """Command -> the first arguments it may run with although its bit is clear (as
    given; compared without ASCII case), in the order added."""

    def copy(self) -> Selector:
        """A deep enough copy to apply rules to."""
        out = replace(self)
        self._copy_lists(out)
        return out

    def _copy_lists(self, out: Selector) -> None:
        """Give `out` (a shallow copy of self) its own lists, set and dict."""
        out.keys = list(self.keys)
        out.channels = list(self.channels)
        out.allowed = set(self.allowed)
        out.firstargs = {k: list(v) for k, v in self.firstargs.items()}


def _allkeys(sel: Selector, catalog: Catalog) -> None:
    sel.allkeys = True
    sel.keys.clear()


def _resetkeys(sel: Selector, catalog: Catalog) -> None:
    sel.allkeys = False
    sel.keys.clear()


def _allchannels(sel: Selector, catalog: Catalog) -> None:
    sel.allchannels = True
    sel.channels.clear()


def _resetchannels(sel: Selector, catalog: Catalog) -> None:
    sel.allchannels = False
    sel.channels.clear()


def _allcommands(sel: Selector, catalog: Catalog) -> None:
    sel.allowed = set(catalog.categories)
    sel.all_future = True
    sel.firstargs.clear()


def _nocommands(sel: Selector, catalog: Catalog) -> None:
    sel.allowed = set()
    sel.all_future = False
    sel.firstargs.clear()


SELECTOR_SIMPLE = {
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
}
"""The selector rules without an argument (case-insensitive), as Redis names them."""


def apply_selector_rule(sel: Selector, op: str, raw: bytes, catalog: Catalog) -> None:
    """Apply one rule that a selector takes (keys, channels, commands) to `sel`;
    `AclRuleError` for anything else (`raw` is `op`'s bytes: patterns are binary)."""
    simple = SELECTOR_SIMPLE.get(c_string(op).lower())
    if simple is not None:
        simple(sel, catalog)
        return
    head = op[:1]
    if head in ("~", "%"):
        _key_rule(sel, op, raw)
    elif head == "&":
        _channel_rule(sel, op, raw)
    elif head in ("+", "-"):
        _command_rule(sel, op, catalog)
    else:
        raise AclRuleError(op, ERR_SYNTAX)


def _key_rule(sel: Selector, op: str, raw: bytes) -> None:
    if sel.allkeys:
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
    if has_spaces(pattern):
        raise AclRuleError(op, ERR_SYNTAX)
    for i, (known, flags) in enumerate(sel.keys):
        if known == pattern:
            sel.keys[i] = (known, flags | perms)
            return
    sel.keys.append((pattern, perms))


def _channel_rule(sel: Selector, op: str, raw: bytes) -> None:
    if sel.allchannels:
        raise AclRuleError(op, ERR_ALLCHANNELS)
    pattern = raw[1:]
    if has_spaces(pattern):
        raise AclRuleError(op, ERR_SYNTAX)
    if pattern not in sel.channels:
        sel.channels.append(pattern)


def has_spaces(data: bytes) -> bool:
    """Whether `data` has a blank or a NUL (Redis's ACLStringHasSpaces: such patterns
    and user names are refused)."""
    return any(c in _BLANKS_AND_NUL for c in data)


_BLANKS_AND_NUL = frozenset(b" \t\n\v\f\r\0")


def _command_rule(sel: Selector, op: str, catalog: Catalog) -> None:
    op = c_string(op)  # Redis reads command rules as C strings
    allow = op[0] == "+"
    if op[1:2] == "@":
        category = op[2:].lower()
        if category not in CATEGORIES:
            raise AclRuleError(op, ERR_UNKNOWN)
        _change(sel, catalog.category_bits(category), allow)
        return
    name = op[1:]
    if "|" in name and allow:
        parent, sub = name.rsplit("|", 1)
        parent = parent.lower()
        if catalog.resolve(parent) is None:
            raise AclRuleError(op, ERR_UNKNOWN)
        if "|" in parent:
            raise AclRuleError(op, ERR_SUBCOMMAND_ARG)
        if not sub:
            raise AclRuleError(op, ERR_SYNTAX)
        if parent not in catalog.containers:
            _add_firstarg(sel, op, parent, sub)
            return
    found = catalog.resolve(name)
    if found is None:
        raise AclRuleError(op, ERR_UNKNOWN)
    _change(sel, found, allow)


def _change(sel: Selector, leaves: Sequence[str] | frozenset[str], allow: bool) -> None:
    """Set or clear the bits of `leaves`, forgetting their first arguments (Redis's
    ACLChangeSelectorPerm)."""
    if allow:
        sel.allowed.update(leaves)
    else:
        sel.allowed.difference_update(leaves)
    if sel.firstargs:
        for leaf in leaves:
            sel.firstargs.pop(leaf, None)


def _add_firstarg(sel: Selector, op: str, command: str, arg: str) -> None:
    """`+command|arg` for a command without subcommands (Redis's allowed_firstargs)."""
    if " " in arg:
        raise AclRuleError(op, ERR_FIRST_ARG_SPACE)
    if command in sel.allowed:
        return  # Redis keeps it, but neither checks nor shows it while the bit is set
    known = sel.firstargs.setdefault(command, [])
    if fold(arg) not in (fold(a) for a in known):
        known.append(arg)


def c_string(text: str) -> str:
    """`text` up to its first NUL, as C reads it (Redis compares most rules so)."""
    return text.split("\0", 1)[0]


def fold(text: str) -> bytes:
    """`text` with ASCII letters lowered (C's strcasecmp compares so)."""
    return text.encode("utf-8", "surrogateescape").lower()


# -- descriptions -----------------------------------------------------------------------


def describe_selector(sel: Selector, catalog: Catalog) -> str:
    """The selector as rules (Redis's ACLDescribeSelector: keys, channels, commands)."""
    parts = [channel_rules(sel), command_rules(sel, catalog)]
    keys = key_rules(sel)
    return " ".join([keys, *parts] if keys else parts)


def key_rules(sel: Selector) -> str:
    """The key patterns as rules (`~*`, `~app:*`, `%R~r:*`)."""
    if sel.allkeys:
        return "~*"
    return " ".join(_key_rule_text(pattern, perms) for pattern, perms in sel.keys)


def _key_rule_text(pattern: bytes, perms: int) -> str:
    text = pattern.decode("utf-8", "surrogateescape")
    if perms == ALL_PERMS:
        return f"~{text}"
    return "%" + ("R" if perms & READ else "") + ("W" if perms & WRITE else "") + "~" + text


def channel_rules(sel: Selector, *, for_getuser: bool = False) -> str:
    """The channel patterns as rules (ACL LIST prefixes them with `resetchannels`)."""
    if sel.allchannels:
        return "&*"
    pats = [f"&{p.decode('utf-8', 'surrogateescape')}" for p in sel.channels]
    return " ".join(pats if for_getuser else ["resetchannels", *pats])


def command_rules(sel: Selector, catalog: Catalog) -> str:
    """The command permissions as rules, rebuilt from the allowed set as Redis 7.0 does:
    `+@all` (or `-@all`), then greedily the category that covers the most of what is
    left with the fewest exceptions, then single commands for the difference."""
    additive = not sel.all_future
    rules = ["-@all" if additive else "+@all"]
    fake = set() if additive else set(catalog.categories)
    temp = set(sel.allowed)
    applied: set[str] = set()
    while True:
        best, mindiff, maxsame = "", 1 << 62, 0
        for category in CATEGORIES:
            if category in applied:
                continue
            flagged = catalog.in_category(category)
            on = len(temp.intersection(flagged))
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
    rules.extend(_single_rules(sel, fake, catalog))
    return " ".join(rules)


def _single_rules(sel: Selector, fake: set[str], catalog: Catalog) -> list[str]:
    """`+name`/`-name` wherever `fake` differs from the allowed set: each command, then
    its subcommands (naming a container sets its subcommands too), then its first
    arguments. Redis walks its command table's hash order; Cairn walks names in order."""
    out = []
    differ = {leaf.split("|", 1)[0] for leaf in sel.allowed.symmetric_difference(fake)}
    for name in sorted(differ.union(sel.firstargs)):  # the rest needs no rule
        for item in (name, *catalog.containers.get(name, ())):
            want = item in sel.allowed
            if want == (item in fake):
                continue
            out.append(("+" if want else "-") + item)
            changed = (item, *catalog.containers.get(item, ()))
            if want:
                fake.update(changed)
            else:
                fake.difference_update(changed)
        if name not in sel.allowed:
            out.extend(f"+{name}|{arg}" for arg in sel.firstargs.get(name, ()))
    return out


# -- reading selector groups ------------------------------------------------------------


def split_args(line: bytes) -> list[bytes] | None:
    """Redis's sdssplitargs: words separated by blanks, with "double" (escapes `\\n`,
    `\\xHH` ...) and 'single' quotes; None for unbalanced quotes (or a closing quote
    not followed by a blank). The line ends at a NUL byte, as a C string does."""
    line = line.split(b"\0", 1)[0]
    out: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\n\v\f\r":
            i += 1
        if i >= n:
            return out
        word = bytearray()
        i = _split_word(line, i, word)
        if i < 0:
            return None
        out.append(bytes(word))


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEXDIGITS = b"0123456789abcdefABCDEF"


def _split_word(line: bytes, i: int, word: bytearray) -> int:
    """One word of `split_args` from `i` into `word`; where the next starts, -1: bad."""
    n, quote = len(line), 0
    while True:
        c = line[i] if i < n else 0
        nxt = line[i + 1] if i + 1 < n else 0
        if quote == ord('"'):
            if c == ord("\\") and nxt == ord("x") and _hex_pair(line, i + 2):
                word.append(int(line[i + 2 : i + 4], 16))
                i += 3
            elif c == ord("\\") and nxt:
                i += 1
                word.append(_ESCAPES.get(nxt, nxt))
            elif c == ord('"'):
                if nxt and nxt not in b" \t\n\v\f\r":
                    return -1
                return i + 1
            elif not c:
                return -1
            else:
                word.append(c)
        elif quote:
            if c == ord("\\") and nxt == ord("'"):
                i += 1
                word.append(nxt)
            elif c == ord("'"):
                if nxt and nxt not in b" \t\n\v\f\r":
                    return -1
                return i + 1
            elif not c:
                return -1
            else:
                word.append(c)
        elif c in (0, 32, 10, 13, 9):
            return i + 1 if c else i
        elif c in (ord('"'), ord("'")):
            quote = c
        else:
            word.append(c)
        i += 1


def _hex_pair(line: bytes, i: int) -> bool:
    return i + 1 < len(line) and line[i] in _HEXDIGITS and line[i + 1] in _HEXDIGITS
