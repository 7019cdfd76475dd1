"""The listing filter: under the agentos preset, `GET /agents` (teams, workflows) for a caller holding only
per-item read scopes is allowed, and its answer cut to those items (Agno 3.1); policy/scopes.py decides it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from authproxy.policy.reads import Reads

__all__ = ["ListingFilter"]


@dataclass(frozen=True, slots=True)
class ListingFilter:
    family: str  # "agents" | "teams" | "workflows"
    ids: frozenset[str]

    label: ClassVar[str] = "listing filter"
    reads: ClassVar[Reads] = Reads.ANSWER

    def describe(self) -> str:
        return f"{self.family} limited to: {' '.join(sorted(self.ids)) or '(nothing)'}"
