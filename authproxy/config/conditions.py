"""A `when: <CEL expression>` of a route value or an MCP tool rule, as a frozen value (config/when.py reads
it): compiled and type-checked at load, located in its file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from authproxy.standards.cel import Expression

__all__ = ["Condition"]


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's `when`, compiled; the rule allows only when its scopes hold and this is true."""

    expression: Expression
    file: str
    line: int
    # The expression and where it is written, as explain and the access line name it (made once).
    described: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "described", f"{self.expression.source} ({self.file}:{self.line})")

    @property
    def source(self) -> str:
        return self.expression.source

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def reads_body(self) -> bool:
        return "body" in self.expression.names

    def reads(self, name: str) -> bool:
        return name in self.expression.names

    def describe(self) -> str:
        """The expression and where it is written, as explain and the access line name it."""
        return self.described
