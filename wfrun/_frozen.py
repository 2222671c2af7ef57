"""`Frozen`: the base of small read-only value classes, written by hand instead of as frozen
dataclasses, whose methods `@dataclass` compiles at every import (docs/architecture.md)."""

from __future__ import annotations

from typing import Any

_NAMES: dict[type, frozenset[str]] = {}  # class -> its __slots__ as a set


class Frozen:
    """Attributes named in `__slots__`, set once through `_set` and read-only afterwards;
    equal by value, unhashable (values may be dicts)."""

    __slots__: tuple[str, ...] = ()

    def _set(self, **values: Any) -> None:
        """Set every attribute (only `__init__` calls this)."""
        names = _NAMES.get(type(self))
        if names is None:
            names = _NAMES[type(self)] = frozenset(self.__slots__)
        if values.keys() != names:
            raise TypeError(f"{type(self).__name__}: set exactly {sorted(self.__slots__)}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot set {name!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]
