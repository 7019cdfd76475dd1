"""Header hygiene per request: the HeaderPlan (config/headers.py) applied to one request or answer."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.answers.table import SERVER
from authproxy.config.headers import HOP_BY_HOP, HeaderPlan, connection_named, normalise
from authproxy.config.model import JwtConfig
from authproxy.policy.decision import Decision

__all__ = [
    "forwarded_headers",
    "identity_headers",
    "relayed_headers",
    "response_headers",
    "with_own_body",
    "without_token",
]


def forwarded_headers(
    plan: HeaderPlan,
    headers: CIMultiDictProxy[str],
    decision: Decision,
    *,
    peer: str | None,
    proto: str,
    websocket: bool = False,
) -> list[tuple[str, str]]:
    """The upstream request's headers: client headers minus the plan, then ours. One pass, no copies.

    The gate has already refused an identity that cannot travel in a header (auth/claims.py
    `check_forwardable`).
    """
    drop = plan.ws_drop if websocket else plan.drop
    named = connection_named(headers.getall("Connection", ()))
    out = [(k, v) for k, v in headers.items() if (n := normalise(k)) not in drop and n not in named]
    if plan.strip_cookie is not None:
        out = _without_cookie(out, plan.strip_cookie)
    if peer:
        out.append(("X-Forwarded-For", peer))
    out.append(("X-Forwarded-Proto", proto))
    host = headers.get("Host")
    if host:
        out.append(("X-Forwarded-Host", host))
    out += identity_headers(plan, decision)
    return out


# What frames the client's body: gone when the proxy forwards its own encoding of what it read (the
# Forwarder writes the length of the bytes it sends).
_BODY_FRAMING = frozenset({"content-type", "content-length", "transfer-encoding", "content-encoding"})


def with_own_body(headers: list[tuple[str, str]], content_type: str) -> list[tuple[str, str]]:
    """The upstream request's headers for a body the proxy re-encoded: the client's framing headers gone,
    the proxy's `Content-Type` set (content rules and MCP messages alike)."""
    return [(n, v) for n, v in headers if n.lower() not in _BODY_FRAMING] + [("Content-Type", content_type)]


def identity_headers(plan: HeaderPlan, decision: Decision) -> list[tuple[str, str]]:
    """The identity headers we set, (name, value), in configured order; a field without a value is left
    unset. The proxied request and the decision port's allow both take them from here."""
    out: list[tuple[str, str]] = []
    for field, name in plan.identity:
        value = _identity_value(field, decision)
        if value:
            out.append((name, value))
    return out


def without_token(headers: list[tuple[str, str]], jwt: JwtConfig) -> list[tuple[str, str]]:
    """The upstream request's headers with the caller's token gone from wherever it is read (its header,
    and its cookie when that is a source): an MCP upstream gets the identity headers, never the token."""
    header = normalise(jwt.header)
    out = [(k, v) for k, v in headers if normalise(k) != header]
    return _without_cookie(out, jwt.cookie) if "cookie" in jwt.sources else out


def _without_cookie(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    """The headers with every `name=` pair gone from each Cookie header (read as auth/extract.py reads it);
    a Cookie header left empty goes too."""
    out: list[tuple[str, str]] = []
    for key, value in headers:
        if key.lower() == "cookie" and name in value:
            kept = [p.strip() for p in value.split(";") if p.partition("=")[0].strip() != name]
            value = "; ".join(p for p in kept if p)
            if not value:
                continue
        out.append((key, value))
    return out


def _identity_value(field: str, decision: Decision) -> str | None:
    if field == "user_id":
        return decision.subject
    if field == "session_id":
        return decision.session_id
    return " ".join(decision.scopes)


def relayed_headers(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream answer's headers minus hop-by-hop ones and any its `Connection` names.

    The upstream's own `Server` is kept; without one, ours stands in (no server software banner).
    """
    folded = [(normalise(k), k, v) for k, v in pairs]
    named = connection_named(v for n, _, v in folded if n == "connection")
    out = [(k, v) for n, k, v in folded if n not in HOP_BY_HOP and n not in named]
    if not any(n == "server" for n, _, _ in folded):
        out.append(("Server", SERVER))
    return out


def response_headers(
    headers: CIMultiDictProxy[str] | CIMultiDict[str] | list[tuple[str, str]],
) -> CIMultiDict[str]:
    """relayed_headers as a multidict, for answers read whole (filtered or checked) before they go."""
    return CIMultiDict(relayed_headers(headers if isinstance(headers, list) else list(headers.items())))
