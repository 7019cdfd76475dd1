"""VerifiedToken: what a successful verification yields, and what the verification cache holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authproxy.auth.claims import Identity

__all__ = ["VerifiedToken"]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    claims: Mapping[str, Any]  # read-only view; shared by every request that presents the same token
    exp: float
    nbf: float | None
    kid: str | None
    alg: str
    # Read from the claims once, at verification: a cached token's requests skip the claim walk.
    identity: Identity
