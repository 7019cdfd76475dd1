"""The content part of a route rule: what the mapping form (`"METHOD PATH": {scopes: [...], pin: ...}`)
asks of the request body, the query and the response, as frozen values (config/route_form.py reads them).

A field is named `query.NAME`, `form.NAME` (urlencoded or multipart) or `json:/POINTER` (RFC 6901).
A claim is one of the caller's identity fields (`user_id`, `session_id`), read through `jwt.claims`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CLAIMS",
    "DEFAULT_MAX_BODY",
    "ContentRule",
    "FieldClaim",
    "FieldRef",
    "ItemScopes",
    "OwnerLookup",
    "Pin",
    "ResponseCheck",
    "parse_field",
]

Claim = str  # one of CLAIMS, checked at load
CLAIMS: tuple[Claim, ...] = ("user_id", "session_id")
DEFAULT_MAX_BODY = 1024 * 1024  # bytes a content rule reads of a request or response unless it says more


@dataclass(frozen=True, slots=True)
class FieldRef:
    where: Literal["query", "form", "json"]
    name: str  # query/form name, or the JSON pointer as written ("/user_id")
    pointer: tuple[str, ...] = ()  # decoded JSON pointer tokens (json only)

    def __str__(self) -> str:
        return f"json:{self.name}" if self.where == "json" else f"{self.where}.{self.name}"


@dataclass(frozen=True, slots=True)
class FieldClaim:
    """A field tied to one of the caller's claims.

    As a pin (request): absent -> set to the claim, different -> refused. As a response check: a 2xx
    JSON answer whose field is not the claim answers 404.
    """

    field: FieldRef
    claim: Claim


Pin = FieldClaim
ResponseCheck = FieldClaim


@dataclass(frozen=True, slots=True)
class ItemScopes:
    """The request field names an item; the caller needs these scopes with `{value}` bound to it."""

    field: FieldRef
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OwnerLookup:
    """Before forwarding, GET `target` from the upstream; unless it answers 200 and every `expect` holds,
    the request is answered `status` (404) and never forwarded. Templates take `{param}` (path),
    `{query.NAME}` (the request's query; absent -> 400) and `{caller.user_id}` / `{caller.session_id}`.
    """

    target: str
    expect: tuple[tuple[FieldRef, str], ...] = ()
    status: int = 404


@dataclass(frozen=True, slots=True)
class ContentRule:
    pins: tuple[Pin, ...] = ()
    items: tuple[ItemScopes, ...] = ()
    response: tuple[ResponseCheck, ...] = ()
    owner: OwnerLookup | None = None
    max_body: int = DEFAULT_MAX_BODY


def parse_field(text: str, *, where: tuple[str, ...] = ("query", "form", "json")) -> FieldRef:
    """`query.NAME`, `form.NAME` or `json:/POINTER`; raises ValueError(message) otherwise."""
    if text.startswith("json:"):
        pointer = text[5:]
        if "json" not in where:
            raise ValueError(f"'{text}': only {', '.join(where)} fields are allowed here")
        if not pointer.startswith("/") or pointer == "/":
            raise ValueError(f"'{text}': a JSON field is json:/pointer, e.g. json:/user_id")
        tokens = tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))
        if any(not t for t in tokens):
            raise ValueError(f"'{text}': a JSON pointer has no empty segment")
        return FieldRef("json", pointer, tokens)
    kind, dot, name = text.partition(".")
    if not dot or kind not in ("query", "form") or not name:
        raise ValueError(f"'{text}': a field is query.NAME, form.NAME or json:/POINTER")
    if kind not in where:
        raise ValueError(f"'{text}': only {', '.join(where)} fields are allowed here")
    return FieldRef("query" if kind == "query" else "form", name)
