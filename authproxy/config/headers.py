"""Header rules, one source for config checks, the gate and the proxy: which names never cross a hop, which
names authproxy sets itself, how names are compared, and what a forwarded identity value may hold.

Names are compared normalised (lower-case, `_` read as `-`), because some upstream stacks (WSGI/CGI among
them) fold `X_Auth_User_Id` onto `X-Auth-User-Id`: a client must not smuggle an identity header that way.
`HeaderPlan` is compiled once per config and kept in the Runtime; proxy/headers.py applies it per request,
and auth/claims.py `check_forwardable` refuses an identity its headers cannot carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authproxy.config.model import ForwardConfig, JwtConfig
from authproxy.config.values import parse_token_name

__all__ = [
    "DEFAULT_IDENTITY_HEADERS",
    "HOP_BY_HOP",
    "HeaderPlan",
    "check_identity_header",
    "connection_named",
    "normalise",
]

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection"}
    | {"te", "trailer", "transfer-encoding", "upgrade"}
)
# Client copies of what we set ourselves: we are the first hop and trust none of them. The other names a
# client's address is claimed under are dropped too: an upstream (or a realip module) that trusts its proxy
# would take a client's own `X-Real-IP` as the proxy's word.
_FORWARDING = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"}
    | {"x-real-ip", "true-client-ip", "x-client-ip", "x-cluster-client-ip"}
)
# The gate decided on the real method; an override would let the upstream run another one.
_METHOD_OVERRIDES = frozenset({"x-http-method-override", "x-method-override", "x-http-method"})
# host: the client session sends the upstream's own; expect: the proxy answers 100-continue itself.
_PER_HOP = frozenset({"host", "expect"})
# A WebSocket handshake is negotiated per hop; the client session writes its own.
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
# Set per hop or by authproxy itself; an identity header by one of these names would break the request.
_RESERVED = (
    _FORWARDING | _METHOD_OVERRIDES | _PER_HOP | _WS_HANDSHAKE | {"content-length", "content-type", "cookie"}
)

# Secure by default: the upstream learns who is calling, and no client can claim to be someone else.
DEFAULT_IDENTITY_HEADERS: tuple[tuple[str, str], ...] = ForwardConfig().identity_headers


def normalise(name: str) -> str:
    """How upstream stacks may read a header name: case-insensitive, `_` as `-`."""
    return name.lower().replace("_", "-")


def connection_named(values: Iterable[str]) -> frozenset[str]:
    """The normalised names a `Connection` header lists: hop-by-hop for this message."""
    tokens = (token.strip() for value in values for token in value.split(","))
    return frozenset(normalise(token) for token in tokens if token)


def check_identity_header(name: str, token_header: str) -> None:
    """A header authproxy may set on the upstream request; ValueError(message) when it must not."""
    folded = normalise(parse_token_name(name))
    if folded in HOP_BY_HOP:
        raise ValueError(f"'{name}' is a hop-by-hop header and never reaches the upstream")
    if folded in _RESERVED:
        raise ValueError(f"'{name}' is reserved: the connection or authproxy sets it")
    if folded == normalise(token_header):
        raise ValueError(f"'{name}' is the header the token is read from (jwt.header)")


@dataclass(frozen=True, slots=True)
class HeaderPlan:
    drop: frozenset[str]  # normalised names removed from every upstream request
    ws_drop: frozenset[str]  # the same plus the handshake headers, for WebSocket upgrades
    identity: tuple[tuple[str, str], ...]  # (field, header name) we set, as configured
    # forward.strip_authorization with a cookie source: the cookie the token is read from never passes
    strip_cookie: str | None = None

    @classmethod
    def build(cls, forward: ForwardConfig, jwt: JwtConfig) -> HeaderPlan:
        # The default names are stripped even when setting them is turned off: an upstream written for
        # the defaults must never read a client's copy.
        named = (*DEFAULT_IDENTITY_HEADERS, *forward.identity_headers)
        identity_names = {normalise(name) for _, name in named}
        drop = HOP_BY_HOP | _FORWARDING | _METHOD_OVERRIDES | _PER_HOP | identity_names
        strip_cookie = None
        if forward.strip_authorization:
            # The token goes wherever it was read from: its header, and its cookie when that is a source.
            drop |= {normalise(jwt.header)}
            strip_cookie = jwt.cookie if "cookie" in jwt.sources else None
        return cls(frozenset(drop), frozenset(drop | _WS_HANDSHAKE), forward.identity_headers, strip_cookie)
