"""Located nodes -> the frozen Config: every section checked, every problem reported in one pass.

The pure parsers here (`parse_address`, `check_upstream_url`, `parse_duration`) raise ValueError(message)
and are shared with command-line overrides; the section builders report Problems instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Mapping as EnvMap
from typing import Literal, TypeVar, cast
from urllib.parse import urlsplit

from authproxy.config.authz import AUTHZ_KEYS, read_authz
from authproxy.config.fields import (
    Report,
    Section,
    model_keys,
    read_bool,
    read_choice,
    read_duration,
    read_fraction,
    read_list,
    read_section,
    read_str,
    read_value,
)
from authproxy.config.headers import check_identity_header, normalise
from authproxy.config.keys import check_families, read_algorithms, read_keys
from authproxy.config.limits import read_rate_limits
from authproxy.config.listeners import check_mode, command_line, read_listeners
from authproxy.config.mcp import endpoint_routes, issuers_of, read_mcp
from authproxy.config.model import (
    NO_OVERRIDES,
    Address,
    ClaimPaths,
    Config,
    ForwardConfig,
    JwtConfig,
    KeySource,
    LoggingConfig,
    OidcIssuer,
    Overrides,
    PolicyConfig,
    UpstreamConfig,
)
from authproxy.config.rules import read_policy
from authproxy.config.source import Node, Scalar
from authproxy.config.tls import read_listener_tls, read_upstream_tls
from authproxy.config.values import (
    check_upstream_url,
    parse_address,
    parse_claim_path,
    parse_duration,
    parse_token_name,
)

__all__ = ["build", "check_upstream_url", "parse_address", "parse_duration"]

T = TypeVar("T")

# Each section's keys are its model's fields. `path` is the file's own name; authz.py reads `authz` and the
# top-level `authz_listen` (the decision port's address stands beside `listen` and `admin_listen`).
_TOP = (*model_keys(Config, skip=("path", "authz")), *AUTHZ_KEYS)
_UPSTREAM = model_keys(UpstreamConfig)
_JWT = model_keys(JwtConfig)
# Also the keys of forward.identity_headers: the identity fields, which jwt.claims locates.
_CLAIMS = model_keys(ClaimPaths)
_FORWARD = model_keys(ForwardConfig)
_LOGGING = model_keys(LoggingConfig)
_DEFAULT_JWT = JwtConfig((), ())
_DEFAULT = Config("", UpstreamConfig(""), _DEFAULT_JWT)
_FOLDING = "names compare case-insensitively, '_' as '-'"


def build(
    root: Node,
    file: str,
    report: Report,
    *,
    preset_dir: str,
    env: EnvMap[str, str],
    overrides: Overrides = NO_OVERRIDES,
) -> Config | None:
    """The whole Config, or None when anything was reported as an error."""
    top = read_section(report, "", 1, root, _TOP, required=("jwt",))
    if top is None:
        return None
    proxied = "upstream" in top.entries or overrides.upstream is not None
    listen, admin = read_listeners(report, top, overrides, _DEFAULT, proxied=proxied)
    upstream = _upstream(report, top, os.path.dirname(file), overrides.upstream)
    jwt = _jwt(report, top, os.path.dirname(file))
    tls = _optional(
        top, "tls", lambda p, n: read_listener_tls(report, p, top.key_line(p), n, os.path.dirname(file)), None
    )
    policy: PolicyConfig | None = PolicyConfig()
    if (node := top.get("policy")) is not None:
        policy = read_policy(report, top.key_line("policy"), node, preset_dir, env)
    token_header = jwt.header if jwt is not None else _DEFAULT_JWT.header
    forward = _optional(top, "forward", lambda p, n: _forward(report, top, n, token_header), _DEFAULT.forward)
    logging = _optional(top, "logging", lambda p, n: _logging(report, top, n), _DEFAULT.logging)
    limits = None
    if (node := top.get("rate_limits")) is not None and policy is not None:
        limits = read_rate_limits(report, top.key_line("rate_limits"), node, policy)
    issuers = issuers_of(jwt.keys, jwt.issuer) if jwt is not None else ()
    mcp = read_mcp(report, top, policy, issuers, preset_dir, env)
    authz = read_authz(
        report, top, tuple((k, a) for k, a in (("listen", listen), ("admin_listen", admin)) if a)
    )
    check_mode(report, proxied=proxied, authz=authz)
    if authz is None or report.errors or None in (admin, upstream, jwt, policy, forward, logging):
        return None
    if "tls" in top.entries and tls is None:
        return None
    policy = endpoint_routes(cast(PolicyConfig, policy), mcp)
    return Config(
        path=file,
        upstream=cast(UpstreamConfig, upstream),
        jwt=cast(JwtConfig, jwt),
        listen=listen,
        admin_listen=cast(Address, admin),
        tls=tls,
        policy=policy,
        forward=cast(ForwardConfig, forward),
        logging=cast(LoggingConfig, logging),
        rate_limits=limits,
        authz=authz,
        mcp=mcp,
    )


def _optional(section: Section, name: str, read: Callable[[str, Node], T | None], default: T) -> T | None:
    """`default` when the key is absent; otherwise what `read` makes of it (None: invalid, reported)."""
    node = section.get(name)
    return default if node is None else read(section.sub(name), node)


def _upstream(report: Report, top: Section, base_dir: str, override: str | None) -> UpstreamConfig | None:
    """The upstream; url "" when neither the file nor `--upstream` names one (build.check_mode decides)."""
    url_override = None
    if (
        override is not None
        and (url_override := command_line(report, "--upstream", override, _upstream_url)) is None
    ):
        return None
    node = top.get("upstream")
    if node is None:
        return UpstreamConfig(url_override or "")
    required = () if url_override is not None else ("url",)
    section = read_section(report, "upstream", top.key_line("upstream"), node, _UPSTREAM, required)
    if section is None:
        return None
    url = _optional(section, "url", lambda p, n: read_value(report, p, n, _upstream_url), None)
    url = url_override or url

    def timeout(p: str, n: Node) -> float | None:
        return read_duration(report, p, n, positive=True)

    connect = _optional(section, "connect_timeout", timeout, _DEFAULT.upstream.connect_timeout)
    read = _optional(section, "read_timeout", timeout, _DEFAULT.upstream.read_timeout)
    tls = None
    if (tls_node := section.get("tls")) is not None and url is not None:
        if urlsplit(url).scheme != "https":
            report.error(section.key_line("tls"), "upstream.tls: needs an https:// upstream.url")
            return None
        tls = read_upstream_tls(report, section.key_line("tls"), tls_node, base_dir)
        if tls is None:
            return None
    if url is None or connect is None or read is None:
        return None
    return UpstreamConfig(url, connect, read, tls)


def _upstream_url(url: str) -> str:
    check_upstream_url(url)
    return url


def _jwt(report: Report, top: Section, base_dir: str) -> JwtConfig | None:
    node = top.get("jwt")
    line = top.key_line("jwt")
    section = (
        read_section(report, "jwt", line, node, _JWT, ("algorithms", "keys")) if node is not None else None
    )
    if section is None:
        return None
    algorithms = _optional(section, "algorithms", lambda p, n: read_algorithms(report, p, n), None)
    keys = _optional(section, "keys", lambda p, n: read_keys(report, p, n, base_dir, algorithms), None)
    if algorithms is not None and keys is not None:
        check_families(report, "jwt.algorithms", section.key_line("algorithms"), algorithms, keys)
    aud_iss = _audience_and_issuer(report, section, keys or ())
    d = _DEFAULT_JWT
    leeway = _optional(section, "leeway", lambda p, n: read_duration(report, p, n), d.leeway)
    default_sources: tuple[str, ...] = d.sources
    sources = _optional(section, "sources", lambda p, n: _sources(report, p, n), default_sources)
    header = _optional(section, "header", lambda p, n: read_value(report, p, n, parse_token_name), d.header)
    cookie = _optional(section, "cookie", lambda p, n: read_value(report, p, n, parse_token_name), d.cookie)
    claims = _optional(section, "claims", lambda p, n: _claims(report, section, n), d.claims)
    if aud_iss is None or None in (algorithms, keys, leeway, sources, header, cookie, claims):
        return None
    return JwtConfig(
        algorithms=cast(tuple[str, ...], algorithms),
        keys=cast(tuple[KeySource, ...], keys),
        audience=aud_iss[0],
        issuer=aud_iss[1],
        leeway=cast(float, leeway),
        sources=cast(tuple[Literal["header", "cookie"], ...], sources),
        header=cast(str, header),
        cookie=cast(str, cookie),
        claims=cast(ClaimPaths, claims),
    )


def _audience_and_issuer(
    report: Report, jwt: Section, keys: tuple[KeySource, ...]
) -> tuple[tuple[str, ...] | None, str | None] | None:
    """(audience, issuer), each None when unset; None when either is invalid."""
    audience_ok, audience = True, None
    if (aud := jwt.get("audience")) is None:
        report.warn(jwt.line, "jwt.audience is not set, so a token's aud is not checked")
    else:
        audience = _audience(report, aud)
        audience_ok = audience is not None
    issuer_ok, issuer = True, None
    if (iss := jwt.get("issuer")) is not None:
        issuer = read_str(report, "jwt.issuer", iss)
        issuer_ok = issuer is not None and _issuer_agrees(report, iss.line, issuer, keys)
    return (audience, issuer) if audience_ok and issuer_ok else None


def _audience(report: Report, node: Node) -> tuple[str, ...] | None:
    if isinstance(node, Scalar):
        value = read_str(report, "jwt.audience", node)
        return None if value is None else (value,)
    items = read_list(report, "jwt.audience", node)
    if items is None:
        return None
    values = [read_str(report, f"jwt.audience[{i}]", item) for i, item in enumerate(items)]
    return tuple(v for v in values if v is not None) if None not in values else None


def _issuer_agrees(report: Report, line: int, issuer: str, keys: tuple[KeySource, ...]) -> bool:
    for key in keys:
        if isinstance(key, OidcIssuer) and key.issuer != issuer:
            # Discovery pins `iss` to the OIDC issuer: no token could match both.
            report.error(line, f"jwt.issuer: differs from the oidc_issuer at line {key.line}")
            return False
    return True


def _sources(report: Report, path: str, node: Node) -> tuple[str, ...] | None:
    items = read_list(report, path, node)
    if items is None:
        return None
    sources: list[str | None] = []
    for i, item in enumerate(items):
        source = read_choice(report, f"{path}[{i}]", item, ("header", "cookie"))
        if source is not None and source in sources:
            report.error(item.line, f"{path}[{i}]: {source} is listed twice")
            source = None
        sources.append(source)
    return None if None in sources else tuple(cast(list[str], sources))


def _claims(report: Report, jwt: Section, node: Node) -> ClaimPaths | None:
    section = read_section(report, "jwt.claims", jwt.key_line("claims"), node, _CLAIMS)
    if section is None:
        return None
    d = ClaimPaths()
    paths = [
        _optional(section, name, lambda p, n: read_value(report, p, n, parse_claim_path), getattr(d, name))
        for name in _CLAIMS
    ]
    return None if None in paths else ClaimPaths(*cast(list[str], paths))


def _forward(report: Report, top: Section, node: Node, token_header: str) -> ForwardConfig | None:
    section = read_section(report, "forward", top.key_line("forward"), node, _FORWARD)
    if section is None:
        return None
    strip = _optional(section, "strip_authorization", lambda p, n: read_bool(report, p, n), False)
    identity: tuple[tuple[str, str], ...] | None = ForwardConfig().identity_headers
    if (headers := section.get("identity_headers")) is not None:
        identity = _identity_headers(report, section, headers, token_header)
    if strip is None or identity is None:
        return None
    return ForwardConfig(identity, strip)


def _identity_headers(
    report: Report, forward: Section, node: Node, token_header: str
) -> tuple[tuple[str, str], ...] | None:
    path = "forward.identity_headers"
    section = read_section(report, path, forward.key_line("identity_headers"), node, _CLAIMS)
    if section is None:
        return None
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for name, value in section.entries.items():
        header = read_value(report, f"{path}.{name}", value, lambda h: _identity_header(h, token_header))
        if header is None:
            continue
        if normalise(header) in seen:
            first = seen[normalise(header)]
            report.error(value.line, f"{path}.{name}: '{header}' is already used for {first} ({_FOLDING})")
            continue
        seen[normalise(header)] = name
        pairs.append((name, header))
    return tuple(pairs) if len(pairs) == len(section.entries) else None


def _identity_header(name: str, token_header: str) -> str:
    check_identity_header(name, token_header)
    return name


def _logging(report: Report, top: Section, node: Node) -> LoggingConfig | None:
    section = read_section(report, "logging", top.key_line("logging"), node, _LOGGING)
    if section is None:
        return None

    def choice(name: str, choices: tuple[str, ...]) -> str | None:
        value = section.get(name)
        default: str = getattr(_DEFAULT.logging, name)
        return default if value is None else read_choice(report, section.sub(name), value, choices)

    level = choice("level", ("debug", "info", "warning", "error"))
    fmt = choice("format", ("json", "console"))
    default_rate = _DEFAULT.logging.allow_sample_rate
    rate = _optional(section, "allow_sample_rate", lambda p, n: read_fraction(report, p, n), default_rate)
    if level is None or fmt is None or rate is None:
        return None
    return LoggingConfig(
        cast(Literal["debug", "info", "warning", "error"], level), cast(Literal["json", "console"], fmt), rate
    )
