"""The commands an ACL rule may name, and the categories each belongs to.

Redis keeps a bit per command and per subcommand (`client` and `client|list` each have
one); a category rule sets or clears the bits of every command and subcommand in the
category, and a rule naming a container (`+client`) those of the container and all of
its subcommands. The catalog is built from the node's command tables, so every node of
one version computes the same permissions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CATEGORIES: tuple[str, ...] = (
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
)
"""Redis 7.0's categories, in the order of its table (ACL CAT, and ACL LIST's rules)."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every leaf command with its categories, and the containers' subcommands."""

    categories: Mapping[str, frozenset[str]]
    """Command or subcommand name (`get`, `client`, `client|list`) -> category names
    (without `@`)."""
    containers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Container name -> its subcommands (`client` -> (`client|getname`, ...)), sorted."""
    arities: Mapping[str, int] = field(default_factory=dict)
    """Command -> its arity, where known (ACL DRYRUN checks it as Redis does)."""
    flagged: Mapping[str, tuple[str, ...]] = field(init=False, repr=False)
    bits: Mapping[str, frozenset[str]] = field(init=False, repr=False)

    @classmethod
    def build(
        cls, commands: Mapping[str, Iterable[str]], arities: Mapping[str, int] | None = None
    ) -> Catalog:
        """A catalog from name -> categories (`@read` or `read`); a subcommand's
        container is added (without categories) if `commands` lacks it."""
        cats = {
            name.lower(): frozenset(c.lstrip("@").lower() for c in found)
            for name, found in commands.items()
        }
        containers: dict[str, list[str]] = {}
        for name in list(cats):
            if "|" in name:
                parent = name.split("|", 1)[0]
                containers.setdefault(parent, []).append(name)
                cats.setdefault(parent, frozenset())
        subs = {k: tuple(sorted(v)) for k, v in containers.items()}
        return cls(cats, subs, {k.lower(): v for k, v in (arities or {}).items()})

    def __post_init__(self) -> None:
        flagged = {
            c: tuple(sorted(n for n, cs in self.categories.items() if c in cs)) for c in CATEGORIES
        }
        bits = {}
        for category, names in flagged.items():
            found = set(names)
            for name in names:
                found.update(self.containers.get(name, ()))
            bits[category] = frozenset(found)
        object.__setattr__(self, "flagged", flagged)
        object.__setattr__(self, "bits", bits)

    def top_level(self) -> list[str]:
        """Every command (not subcommand), sorted by name."""
        return sorted(n for n in self.categories if "|" not in n)

    def in_category(self, category: str) -> tuple[str, ...]:
        """The commands and subcommands flagged with `category` (no `@`), sorted (ACL
        CAT; what ACL LIST counts)."""
        return self.flagged[category]

    def category_bits(self, category: str) -> frozenset[str]:
        """What `+@category` sets: the flagged commands, and every subcommand of a
        flagged container (as Redis sets them)."""
        return self.bits[category]

    def resolve(self, name: str) -> tuple[str, ...] | None:
        """The names a command rule's name sets (a container: itself and its
        subcommands); None: no such command."""
        name = name.lower()
        if name not in self.categories:
            return None
        return (name, *self.containers.get(name, ()))

    def leaf_of(self, argv: list[bytes]) -> str:
        """The name whose bit `argv` needs: `client|list` for CLIENT LIST, else the
        command's name (also for a container with an unknown subcommand, which its
        handler refuses)."""
        name = argv[0].decode("utf-8", "replace").lower()
        if name in self.containers and len(argv) > 1:
            sub = f"{name}|{argv[1].decode('utf-8', 'replace').lower()}"
            if sub in self.categories:
                return sub
        return name

    def arity_error(self, argv: list[bytes]) -> str | None:
        """Redis's error when `argv` has not as many arguments as its command (or
        subcommand) takes; None when it has, or its arity is not known."""
        leaf = self.leaf_of(argv)
        arity = self.arities.get(leaf)
        if arity is None or (len(argv) == arity if arity >= 0 else len(argv) >= -arity):
            return None
        return f"ERR wrong number of arguments for '{leaf}' command"
