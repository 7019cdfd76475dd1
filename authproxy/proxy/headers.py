"""Header hygiene as a plan compiled at load: what never reaches the upstream, and what we set instead.

Names are compared normalised (lower-case, `_` read as `-`), because some upstream stacks (WSGI/CGI among
them) fold `X_Auth_User_Id` onto `X-Auth-User-Id`: a client must not smuggle an identity header that way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.config.model import ForwardConfig, JwtConfig
from authproxy.errors import InvalidToken
from authproxy.policy.decision import Decision

__all__ = ["HOP_BY_HOP", "HeaderPlan", "normalise", "response_headers"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Client copies of what we set ourselves: we are the first hop and trust none of them.
_FORWARDING = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})
# The gate decided on the real method; an override would let the upstream run another one.
_METHOD_OVERRIDES = frozenset({"x-http-method-override", "x-method-override", "x-http-method"})
# host: the client session sends the upstream's own; expect: the proxy answers 100-continue itself.
_PER_HOP = frozenset({"host", "expect"})
# A WebSocket handshake is negotiated per hop; the client session writes its own.
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
# Every control character but tab: aiohttp refuses to send them (a 500), and CR/LF would split a header.
_UNSAFE_VALUE_CHARS = frozenset(chr(c) for c in (*range(0x20), 0x7F)) - {"\t"}


def normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _connection_named(values: Iterable[str]) -> frozenset[str]:
    tokens = (token.strip() for value in values for token in value.split(","))
    return frozenset(normalise(token) for token in tokens if token)


@dataclass(frozen=True, slots=True)
class HeaderPlan:
    drop: frozenset[str]  # normalised names removed from every upstream request
    ws_drop: frozenset[str]  # the same plus the handshake headers, for WebSocket upgrades
    identity: tuple[tuple[str, str], ...]  # (field, header name) as configured

    @classmethod
    def build(cls, forward: ForwardConfig, jwt: JwtConfig) -> HeaderPlan:
        identity_names = {normalise(name) for _, name in forward.identity_headers}
        drop = HOP_BY_HOP | _FORWARDING | _METHOD_OVERRIDES | _PER_HOP | identity_names
        if forward.strip_authorization:
            drop |= {normalise(jwt.header)}
        return cls(frozenset(drop), frozenset(drop | _WS_HANDSHAKE), forward.identity_headers)

    def upstream_headers(
        self,
        headers: CIMultiDictProxy[str],
        decision: Decision,
        *,
        peer: str | None,
        proto: str,
        websocket: bool = False,
    ) -> list[tuple[str, str]]:
        """The upstream request's headers: client headers minus the plan, then ours. One pass, no copies."""
        drop = self.ws_drop if websocket else self.drop
        named = _connection_named(headers.getall("Connection", ()))
        out = [(k, v) for k, v in headers.items() if (n := normalise(k)) not in drop and n not in named]
        if peer:
            out.append(("X-Forwarded-For", peer))
        out.append(("X-Forwarded-Proto", proto))
        host = headers.get("Host")
        if host:
            out.append(("X-Forwarded-Host", host))
        for field, name in self.identity:
            value = _identity_value(field, decision)
            if value:
                out.append((name, value))
        return out


def _identity_value(field: str, decision: Decision) -> str | None:
    if field == "user_id":
        value = decision.subject
    elif field == "session_id":
        value = decision.session_id
    else:
        value = " ".join(decision.scopes)
        if value.split() != list(decision.scopes):
            # Scopes travel space-separated: one scope "x proxy:admin" would reach the upstream as two.
            raise InvalidToken("a scope holds whitespace and cannot be forwarded")
    # Claims come from a signed token, but a header is no place for a line break: refuse, never trim.
    if value and not _UNSAFE_VALUE_CHARS.isdisjoint(value):
        raise InvalidToken(f"the {field} claim holds a control character")
    return value


def response_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The upstream response's headers minus hop-by-hop ones and any its `Connection` names."""
    named = _connection_named(headers.getall("Connection", ()))
    return CIMultiDict(
        (k, v) for k, v in headers.items() if (n := normalise(k)) not in HOP_BY_HOP and n not in named
    )
