"""A msgpack codec for trees of frozen dataclasses, enums, tuples, bytes and scalars.

Each dataclass or enum type gets a fixed small integer code from a table (`Codec(table)`);
a value travels as a msgpack extension of that code holding its fields in declaration
order, so the wire form is compact and positional. Tuples decode as tuples and nothing
else is a container, so decoded values are hashable and compare equal to the originals:
`decode(encode(v)) == v`. Codes are part of the format: never renumber, only append.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

import msgpack


class DecodeError(ValueError):
    """Bytes that are not a value this codec wrote."""


class Codec:
    """Encoder and decoder for the types in `table` (code → type)."""

    def __init__(self, table: dict[int, type], *, checked: bool = False) -> None:
        """`checked`: every decoded dataclass's fields must have their declared types
        (`_conforms`), for what comes from peers (log entries, messages)."""
        self._checked = checked
        self._types = dict(table)
        self._codes = {cls: code for code, cls in table.items()}
        if len(self._codes) != len(self._types):
            raise ValueError("a type appears twice in the codec table")

    def encode(self, value: object) -> bytes:
        """`value` as msgpack bytes."""
        packed: bytes = msgpack.packb(self._lower(value), use_bin_type=True)
        return packed

    def _lower(self, value: object) -> object:
        """`value` with every registered type turned into an extension, recursively.

        This runs before msgpack sees the value because an `IntEnum` or `StrEnum` *is* an
        int or str to msgpack, which would pack it as one and lose its type.
        """
        if isinstance(value, tuple | list):
            return [self._lower(v) for v in value]
        code = self._codes.get(type(value))
        if code is None:
            if isinstance(value, enum.Enum) or dataclasses.is_dataclass(value):
                raise TypeError(f"cannot encode {type(value).__name__}: not in the table")
            return value
        if isinstance(value, enum.Enum):
            return msgpack.ExtType(code, self.encode(value.value))
        fields = [getattr(value, f.name) for f in dataclasses.fields(value)]  # type: ignore[arg-type]
        return msgpack.ExtType(code, self.encode(fields))

    def decode(self, data: bytes) -> object:
        """The value `encode` turned into `data`; `DecodeError` when it is not one."""
        try:
            return msgpack.unpackb(data, ext_hook=self._ext_hook, use_list=False, raw=False)
        except DecodeError:
            raise
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            raise DecodeError(f"malformed placement data: {exc}") from exc

    def _ext_hook(self, code: int, data: bytes) -> object:
        cls = self._types.get(code)
        if cls is None:
            raise DecodeError(f"unknown type code {code}")
        inner: Any = self.decode(data)
        if issubclass(cls, enum.Enum):
            return cls(inner)
        if not isinstance(inner, tuple):
            raise DecodeError(f"{cls.__name__}: fields are not a list")
        value = cls(*inner)
        if not self._checked:
            return value
        for name, hint in _field_hints(cls).items():
            if not _conforms(getattr(value, name), hint):
                raise DecodeError(f"{cls.__name__}.{name}: not a {hint}")
        return value


_HINTS: dict[type, dict[str, Any]] = {}


def _field_hints(cls: type) -> dict[str, Any]:
    """The declared type of each field of dataclass `cls` (worked out once)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _conforms(value: object, hint: Any) -> bool:
    """Whether a decoded `value` has declared type `hint`: what the codec wrote always does,
    so a peer's entry or message whose field holds another type (a string where a time
    belongs) is refused here instead of failing where the metadata uses it. Shapes other
    than scalars, registered types, tuples and unions are not checked."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(args) == len(value) and all(map(_conforms, value, args))
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return type(value) is int
    if hint is float:
        return type(value) in (int, float)
    if isinstance(hint, type) and origin is None:
        return isinstance(value, hint)
    return True
