"""Frozen, typed configuration: what config/build.py makes of the YAML and the rest of authproxy reads.

Every object is built once at load (or reload) and never changes; nothing here does I/O.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal

from authproxy.config.conditions import Condition
from authproxy.config.content import ContentRule
from authproxy.config.limits_model import RateLimitsConfig
from authproxy.config.mcp_model import McpConfig

__all__ = [
    "NO_OVERRIDES",
    "Address",
    "AuthzConfig",
    "ClaimPaths",
    "Config",
    "ForwardConfig",
    "JwksFile",
    "JwksUrl",
    "JwtConfig",
    "KeySource",
    "ListenerTls",
    "LoggingConfig",
    "OidcIssuer",
    "Overrides",
    "PolicyConfig",
    "PublicKeyFile",
    "PublicRule",
    "RouteRule",
    "SecretKey",
    "ShadowPolicy",
    "UpstreamConfig",
    "UpstreamTls",
]


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """`tls:` of a listener; `context` is the server SSLContext made from the files at load."""

    cert_file: str
    key_file: str
    line: int
    context: ssl.SSLContext = field(compare=False, repr=False)
    client_ca_file: str | None = None  # set: clients present a certificate signed by these CAs
    client_auth: Literal["required", "optional"] = "required"


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """`upstream.tls:` for an https upstream; `context` is the client SSLContext made at load."""

    line: int
    context: ssl.SSLContext = field(compare=False, repr=False)
    ca_file: str | None = None  # None: the system's CA bundle
    server_name: str | None = None  # SNI and the name checked in the certificate; None: the URL's host
    cert_file: str | None = None  # a client certificate: mTLS to the upstream
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    url: str  # scheme://host[:port][/base-path], http or https
    connect_timeout: float = 5.0
    read_timeout: float = 300.0  # idle gap between bytes, not the whole response
    tls: UpstreamTls | None = None  # https only; None on https: system CAs, the URL's host


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
    # At most one refetch per this many seconds for tokens naming a kid we lack (a rotated-in key).
    unknown_kid_refresh_interval: float = 10.0


@dataclass(frozen=True, slots=True)
class OidcIssuer:
    """OIDC discovery: `<issuer>/.well-known/openid-configuration` -> `jwks_uri`; pins `iss` to the issuer."""

    issuer: str
    line: int
    refresh_interval: float = 300.0
    allow_insecure_http: bool = False
    unknown_kid_refresh_interval: float = 10.0


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
    content: ContentRule | None = None  # the mapping form's body/query/response checks (config/content.py)
    when: Condition | None = None  # the mapping form's `when:` CEL condition (config/conditions.py)


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
    user_isolation: bool = False  # agentos preset: the isolation fragment is merged in
    # Would-be refusals are forwarded and logged instead of answered (config/trial.py reads both keys).
    dry_run: bool = False
    shadow: ShadowPolicy | None = None  # a second policy decided beside this one, never answering


@dataclass(frozen=True, slots=True)
class ShadowPolicy:
    """`policy.shadow: FILE`: the file (watched for reloads) and the policy it holds."""

    file: str
    policy: PolicyConfig


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    # identity field ("user_id" | "session_id" | "scopes") -> header name set on the upstream request
    identity_headers: tuple[tuple[str, str], ...] = (
        ("user_id", "X-Auth-User-Id"),
        ("session_id", "X-Auth-Session-Id"),
        ("scopes", "X-Auth-Scopes"),
    )
    strip_authorization: bool = False


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    allow_sample_rate: float = 1.0  # share of allowed requests whose access line carries decision detail


@dataclass(frozen=True, slots=True)
class AuthzConfig:
    """The decision port (authproxy/authz): the gate without forwarding, for Envoy, Istio, nginx, Traefik."""

    listen: Address | None = None  # None: no decision port
    path_prefix: str = "/envoy"  # Envoy/Istio `path_prefix`: stripped from a check request's path
    grpc_listen: Address | None = None  # Envoy's gRPC Authorization/Check service; None: not served
    tls: ListenerTls | None = None  # TLS on authz_listen (`authz.tls`); None: plain HTTP
    # With policy.dry_run, a would-be refusal is answered 200 here too (else dry run never widens this port).
    dry_run: bool = False

    @property
    def enabled(self) -> bool:
        return self.listen is not None or self.grpc_listen is not None


@dataclass(frozen=True, slots=True)
class Config:
    path: str  # the file this was loaded from, as given
    upstream: UpstreamConfig
    jwt: JwtConfig
    # The proxied port; None when no upstream is set and only the decision port (authz) runs, which
    # leaves `upstream` unused (url "").
    listen: Address | None = Address("0.0.0.0", 8080)  # noqa: S104 - a sidecar's proxied port is on the pod IP
    admin_listen: Address = Address("127.0.0.1", 9901)
    tls: ListenerTls | None = None  # TLS on the proxied port
    policy: PolicyConfig = PolicyConfig()
    forward: ForwardConfig = ForwardConfig()
    logging: LoggingConfig = LoggingConfig()
    rate_limits: RateLimitsConfig | None = None  # None: nothing is rate-limited
    authz: AuthzConfig = AuthzConfig()
    mcp: McpConfig | None = None  # MCP endpoints authorized per JSON-RPC message (config/mcp.py)


@dataclass(frozen=True, slots=True)
class Overrides:
    """Command-line values laid over the file's (`serve --listen`, `--upstream`); None keeps the file's."""

    listen: str | None = None
    upstream: str | None = None


NO_OVERRIDES = Overrides()
