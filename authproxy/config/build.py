"""Located nodes -> the frozen Config: every section checked, every problem reported in one pass.

The pure parsers here (`parse_address`, `check_upstream_url`, `parse_duration`) raise ValueError(message)
and are shared with command-line overrides; the section builders report Problems instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping as EnvMap
from functools import partial
from typing import Literal, cast
from urllib.parse import urlsplit

from authproxy.config.authz import AUTHZ_KEYS, read_authz
from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_bool,
    read_choice,
    read_duration,
    read_fraction,
    read_items,
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
from authproxy.config.mcp_model import McpConfig
from authproxy.config.model import (
    NO_OVERRIDES,
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
from authproxy.config.trial import read_trial
from authproxy.config.values import (
    check_upstream_url,
    parse_address,
    parse_claim_path,
    parse_duration,
    parse_token_name,
)

__all__ = ["build", "check_upstream_url", "parse_address", "parse_duration"]

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
_SOURCES = ("header", "cookie")
_LEVELS = ("debug", "info", "warning", "error")
_FORMATS = ("json", "console")


def build(
    root: Node,
    file: str,
    report: Report,
    *,
    preset_dir: str,
    env: EnvMap[str, str],
    overrides: Overrides = NO_OVERRIDES,
) -> Config:
    """The whole Config; Invalid once anything was reported as an error (every problem, in one pass)."""
    top = read_section(report, "", 1, root, _TOP, required=("jwt",))
    base_dir = os.path.dirname(file)
    checks = Checks()
    proxied = "upstream" in top.entries or overrides.upstream is not None
    listen, admin = read_listeners(report, top, checks, overrides, _DEFAULT, proxied=proxied)
    upstream = checks.attempt("upstream", lambda: _upstream(report, top, base_dir, overrides.upstream), None)
    jwt = checks.attempt("jwt", lambda: _jwt(report, top, base_dir), None)
    tls = checks.key(
        top, "tls", lambda p, n: read_listener_tls(report, p, top.key_line(p), n, base_dir), None
    )
    policy: PolicyConfig | None = PolicyConfig()
    if (policy_node := top.get("policy")) is not None:
        policy = checks.attempt(
            "policy", lambda: read_policy(report, top.key_line("policy"), policy_node, preset_dir, env), None
        )
        if policy is not None:
            read = partial(read_trial, report, policy_node, policy, base_dir, preset_dir, env)
            policy = checks.attempt("policy", read, None)
    token_header = jwt.header if jwt is not None else _DEFAULT_JWT.header
    forward = checks.key(
        top, "forward", lambda p, n: _forward(report, top, n, token_header), _DEFAULT.forward
    )
    logging = checks.key(top, "logging", lambda p, n: _logging(report, top, n), _DEFAULT.logging)
    limits = None
    if policy is not None:  # limits name the policy's routes: never read against a policy that failed
        limits = checks.key(
            top, "rate_limits", lambda p, n: read_rate_limits(report, top.key_line(p), n, policy), None
        )
    issuers = issuers_of(jwt.keys, jwt.issuer) if jwt is not None else ()
    mcp = checks.attempt("mcp", lambda: read_mcp(report, top, policy, issuers, preset_dir, env), None)
    used = tuple((k, a) for k, a in (("listen", listen), ("admin_listen", admin)) if a)
    authz = checks.attempt("authz", lambda: read_authz(report, top, used), None)
    check_mode(report, proxied=proxied, authz=authz)
    checks.done()
    if report.errors or policy is None or upstream is None or jwt is None or admin is None or authz is None:
        raise Invalid
    return Config(
        path=file,
        upstream=upstream,
        jwt=jwt,
        listen=listen,
        admin_listen=admin,
        tls=tls,
        policy=_with_endpoints(policy, mcp),
        forward=forward,
        logging=logging,
        rate_limits=limits,
        authz=authz,
        mcp=mcp,
    )


def _with_endpoints(policy: PolicyConfig, mcp: McpConfig | None) -> PolicyConfig:
    """The MCP endpoints' routes added to the policy and to its shadow: both decide on the same paths."""
    shadow = policy.shadow
    if shadow is not None:
        shadow = dataclasses.replace(shadow, policy=endpoint_routes(shadow.policy, mcp))
    return dataclasses.replace(endpoint_routes(policy, mcp), shadow=shadow)


def _upstream(report: Report, top: Section, base_dir: str, override: str | None) -> UpstreamConfig:
    """The upstream; url "" when neither the file nor `--upstream` names one (build.check_mode decides)."""
    url_override = None
    if override is not None:
        url_override = command_line(report, "--upstream", override, _upstream_url)
    node = top.get("upstream")
    if node is None:
        return UpstreamConfig(url_override or "")
    required = () if url_override is not None else ("url",)
    section = read_section(report, "upstream", top.key_line("upstream"), node, _UPSTREAM, required)
    checks = Checks()
    url = checks.key(section, "url", lambda p, n: read_value(report, p, n, _upstream_url), None)
    url = url_override or url

    def timeout(p: str, n: Node) -> float:
        return read_duration(report, p, n, positive=True)

    d = _DEFAULT.upstream
    connect = checks.key(section, "connect_timeout", timeout, d.connect_timeout)
    read = checks.key(section, "read_timeout", timeout, d.read_timeout)
    tls = None
    if (tls_node := section.get("tls")) is not None and url is not None:
        if urlsplit(url).scheme != "https":
            raise report.invalid(section.key_line("tls"), "upstream.tls: needs an https:// upstream.url")
        tls = read_upstream_tls(report, section.key_line("tls"), tls_node, base_dir)
    checks.done()
    if url is None:
        raise Invalid  # missing (reported by read_section)
    return UpstreamConfig(url, connect, read, tls)


def _upstream_url(url: str) -> str:
    check_upstream_url(url)
    return url


def _jwt(report: Report, top: Section, base_dir: str) -> JwtConfig:
    node = top.get("jwt")
    if node is None:
        raise Invalid  # missing (reported by read_section)
    section = read_section(report, "jwt", top.key_line("jwt"), node, _JWT, ("algorithms", "keys"))
    checks = Checks()
    algorithms = checks.key(section, "algorithms", lambda p, n: read_algorithms(report, p, n), None)
    keys = checks.key(section, "keys", lambda p, n: read_keys(report, p, n, base_dir, algorithms), None)
    if algorithms is not None and keys is not None:
        check_families(report, "jwt.algorithms", section.key_line("algorithms"), algorithms, keys)
    d = _DEFAULT_JWT
    audience = checks.attempt("audience", lambda: _audience(report, section), None)
    issuer = checks.key(section, "issuer", lambda p, n: _issuer(report, p, n, keys or ()), None)
    leeway = checks.key(section, "leeway", lambda p, n: read_duration(report, p, n), d.leeway)
    sources = checks.key(section, "sources", lambda p, n: _sources(report, p, n), d.sources)
    header = checks.key(section, "header", lambda p, n: read_value(report, p, n, parse_token_name), d.header)
    cookie = checks.key(section, "cookie", lambda p, n: read_value(report, p, n, parse_token_name), d.cookie)
    claims = checks.key(section, "claims", lambda p, n: _claims(report, section, n), d.claims)
    checks.done()
    if algorithms is None or keys is None:
        raise Invalid  # missing (reported by read_section)
    return JwtConfig(algorithms, keys, audience, issuer, leeway, sources, header, cookie, claims)


def _audience(report: Report, jwt: Section) -> tuple[str, ...] | None:
    """The accepted audiences; None when unset, which is allowed but warned about."""
    if (node := jwt.get("audience")) is None:
        report.warn(jwt.line, "jwt.audience is not set, so a token's aud is not checked")
        return None
    if isinstance(node, Scalar):
        return (read_str(report, "jwt.audience", node),)
    return read_items(report, "jwt.audience", node, lambda path, item: read_str(report, path, item), "")


def _issuer(report: Report, path: str, node: Node, keys: tuple[KeySource, ...]) -> str:
    issuer = read_str(report, path, node)
    for key in keys:
        if isinstance(key, OidcIssuer) and key.issuer != issuer:
            # Discovery pins `iss` to the OIDC issuer: no token could match both.
            raise report.invalid(node.line, f"jwt.issuer: differs from the oidc_issuer at line {key.line}")
    return issuer


def _sources(report: Report, path: str, node: Node) -> tuple[Literal["header", "cookie"], ...]:
    items = read_list(report, path, node)
    checks = Checks()
    sources: list[Literal["header", "cookie"]] = []
    for i, item in enumerate(items):
        source = checks.attempt(str(i), lambda: read_choice(report, f"{path}[{i}]", item, _SOURCES), None)  # noqa: B023
        if source is None:
            continue
        if source in sources:
            report.error(item.line, f"{path}[{i}]: {source} is listed twice")
            checks.failed.add(str(i))
            continue
        sources.append(cast(Literal["header", "cookie"], source))
    checks.done()
    return tuple(sources)


def _claims(report: Report, jwt: Section, node: Node) -> ClaimPaths:
    section = read_section(report, "jwt.claims", jwt.key_line("claims"), node, _CLAIMS)
    checks = Checks()
    d = ClaimPaths()
    paths = {
        name: checks.key(
            section, name, lambda p, n: read_value(report, p, n, parse_claim_path), getattr(d, name)
        )
        for name in _CLAIMS
    }
    checks.done()
    return ClaimPaths(**paths)


def _forward(report: Report, top: Section, node: Node, token_header: str) -> ForwardConfig:
    section = read_section(report, "forward", top.key_line("forward"), node, _FORWARD)
    checks = Checks()
    d = _DEFAULT.forward
    strip = checks.key(
        section, "strip_authorization", lambda p, n: read_bool(report, p, n), d.strip_authorization
    )
    identity = checks.key(
        section,
        "identity_headers",
        lambda p, n: _identity_headers(report, section, n, token_header),
        d.identity_headers,
    )
    checks.done()
    return ForwardConfig(identity, strip)


def _identity_headers(
    report: Report, forward: Section, node: Node, token_header: str
) -> tuple[tuple[str, str], ...]:
    path = "forward.identity_headers"
    section = read_section(report, path, forward.key_line("identity_headers"), node, _CLAIMS)
    checks = Checks()
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for name, value in section.entries.items():
        header = checks.key(
            section,
            name,
            lambda p, n: read_value(report, p, n, lambda h: _identity_header(h, token_header)),
            None,
        )
        if header is None:
            continue
        if normalise(header) in seen:
            first = seen[normalise(header)]
            report.error(value.line, f"{path}.{name}: '{header}' is already used for {first} ({_FOLDING})")
            checks.failed.add(name)
            continue
        seen[normalise(header)] = name
        pairs.append((name, header))
    checks.done()
    return tuple(pairs)


def _identity_header(name: str, token_header: str) -> str:
    check_identity_header(name, token_header)
    return name


def _logging(report: Report, top: Section, node: Node) -> LoggingConfig:
    section = read_section(report, "logging", top.key_line("logging"), node, _LOGGING)
    checks = Checks()
    d = _DEFAULT.logging
    level_default: str = d.level
    format_default: str = d.format
    level = checks.key(section, "level", lambda p, n: read_choice(report, p, n, _LEVELS), level_default)
    fmt = checks.key(section, "format", lambda p, n: read_choice(report, p, n, _FORMATS), format_default)
    rate = checks.key(
        section, "allow_sample_rate", lambda p, n: read_fraction(report, p, n), d.allow_sample_rate
    )
    checks.done()
    return LoggingConfig(
        cast(Literal["debug", "info", "warning", "error"], level), cast(Literal["json", "console"], fmt), rate
    )
