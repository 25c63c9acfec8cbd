"""One small registry type for measures, attacks and models."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

UNKNOWN = "unknown {kind} {name!r}; expected one of: {known}"
DUPLICATE = "a {kind} named {name!r} is already registered"


class Registry(dict[str, T]):
    """A name -> entry mapping whose lookups fail with a message listing the known names.

    Args:
        kind: What the entries are, for messages (``"measure"``, ``"attack"``, ``"model"``).
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under a new ``name``; returns the entry."""
        if name in self:
            raise ValueError(DUPLICATE.format(kind=self.kind, name=name))
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry called ``name``, or a ``ValueError`` listing the known names."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(UNKNOWN.format(kind=self.kind, name=name, known=", ".join(self))) from None
