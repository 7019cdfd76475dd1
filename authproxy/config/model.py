"""Frozen, typed configuration: what config/build.py makes of the YAML and the rest of authproxy reads.

Every object is built once at load (or reload) and never changes; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from authproxy.config.mcp_model import McpConfig

__all__ = [
    "Address",
    "ClaimPaths",
    "Config",
    "ForwardConfig",
    "JwksFile",
    "JwksUrl",
    "JwtConfig",
    "KeySource",
    "LoggingConfig",
    "OidcIssuer",
    "PolicyConfig",
    "PublicKeyFile",
    "PublicRule",
    "RouteRule",
    "SecretKey",
    "UpstreamConfig",
]


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    url: str  # scheme://host[:port][/base-path], http or https
    connect_timeout: float = 5.0
    read_timeout: float = 300.0  # idle gap between bytes, not the whole response


# --- key sources: one variant per YAML form; `line` locates the list item for messages ---------


@dataclass(frozen=True, slots=True)
class SecretKey:
    """An HMAC secret, inline (`secret:`) or read at load from `secret_file:` (trailing newline stripped)."""

    secret: bytes
    line: int
    origin: str  # "secret" or the secret file's path, for messages; never the secret itself
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class PublicKeyFile:
    """A PEM public key (RSA, EC or Ed25519), read at load."""

    path: str
    pem: bytes
    line: int
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class JwksFile:
    """A JWKS document on disk, read at load; keys are selected by `kid`."""

    path: str
    document: bytes
    line: int


@dataclass(frozen=True, slots=True)
class JwksUrl:
    """A remote JWKS fetched and refreshed in the background (auth/jwks.py)."""

    url: str
    line: int
    refresh_interval: float = 300.0  # used when the response has no Cache-Control max-age
    allow_insecure_http: bool = False


@dataclass(frozen=True, slots=True)
class OidcIssuer:
    """OIDC discovery: `<issuer>/.well-known/openid-configuration` -> `jwks_uri`; pins `iss` to the issuer."""

    issuer: str
    line: int
    refresh_interval: float = 300.0
    allow_insecure_http: bool = False


KeySource = SecretKey | PublicKeyFile | JwksFile | JwksUrl | OidcIssuer


@dataclass(frozen=True, slots=True)
class ClaimPaths:
    """Where identity fields live in the claims; dotted paths reach nested objects (realm_access.roles)."""

    user_id: str = "sub"
    session_id: str = "session_id"
    scopes: str = "scopes"


@dataclass(frozen=True, slots=True)
class JwtConfig:
    algorithms: tuple[str, ...]
    keys: tuple[KeySource, ...]
    audience: tuple[str, ...] | None = None  # None: `aud` not checked
    issuer: str | None = None  # None: `iss` not checked (unless an oidc_issuer pins it)
    leeway: float = 0.0
    sources: tuple[Literal["header", "cookie"], ...] = ("header",)
    header: str = "Authorization"
    cookie: str = "access_token"
    claims: ClaimPaths = ClaimPaths()


@dataclass(frozen=True, slots=True)
class RouteRule:
    """`"METHOD PATH": [scopes]` as written; `file`/`line` locate it (the preset file for preset rules)."""

    key: str
    scopes: tuple[str, ...]
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class PublicRule:
    """`METHOD PATH` or bare `PATH` (every method) that needs no token."""

    key: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    preset: Literal["agentos"] | None = None
    admin_scope: str | None = None
    unmapped: Literal["deny", "authenticated"] = "deny"
    # Already merged: the preset's rules first, then the user's; a user rule with the same
    # method set and path as a preset rule replaces it (config/build.py does the merge).
    public: tuple[PublicRule, ...] = ()
    routes: tuple[RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    # identity field ("user_id" | "session_id" | "scopes") -> header name set on the upstream request
    identity_headers: tuple[tuple[str, str], ...] = ()
    strip_authorization: bool = False


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    allow_sample_rate: float = 1.0  # share of allowed requests whose access line carries decision detail


@dataclass(frozen=True, slots=True)
class Config:
    path: str  # the file this was loaded from, as given
    upstream: UpstreamConfig
    jwt: JwtConfig
    listen: Address = Address("0.0.0.0", 8080)  # noqa: S104 - the proxied port of a sidecar listens on the pod IP
    admin_listen: Address = Address("127.0.0.1", 9901)
    policy: PolicyConfig = PolicyConfig()
    forward: ForwardConfig = ForwardConfig()
    logging: LoggingConfig = LoggingConfig()
    mcp: McpConfig | None = None  # MCP endpoints authorized per JSON-RPC message (config/mcp.py)
