"""The `rate_limits` section -> RateLimitsConfig: rates parsed, the backend checked, and every limit tied to
the policy routes it counts (a route key or scope action no policy route has is an error).

Read after `policy`, since limits name its routes: a key is compared with the policy's rule keys by
canonical form, so `POST /agents/{id}/runs` names the preset's `POST /agents/{agent_id}/runs`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, cast, get_args
from urllib.parse import urlsplit

from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_choice,
    read_duration,
    read_list,
    read_map,
    read_section,
    read_str,
)
from authproxy.config.limits_model import CallerKey, LimitRule, Rate, RateLimitsConfig, RedisOptions
from authproxy.config.model import PolicyConfig
from authproxy.config.source import Node, Scalar
from authproxy.policy.patterns import parse_pattern

__all__ = ["parse_rate", "read_rate_limits"]

# `rules` is written `routes`: each entry names a route (or a scope action) and its rate.
_KEYS = model_keys(RateLimitsConfig, rename={"rules": "routes"})
_CALLER_KEYS: tuple[str, ...] = get_args(CallerKey)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_REDIS = model_keys(RedisOptions)
# Not Rate's fields: `rate: 10/min` is read into count, period and text (parse_rate).
_RATE = ("rate", "burst")
_BACKEND_SCHEMES = ("redis", "rediss", "unix")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PERIODS |= {"h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE_TEXT = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")
_RATE_HELP = "expected a rate such as 10/min, 5/s, 100/hour or 1000/day"
_MAX_COUNT = 1_000_000_000
_DEFAULT = RateLimitsConfig("", 0)
_ACTION = re.compile(r"[^:\s{}]+:[^:\s{}]+")


def parse_rate(text: str, burst: int | None = None) -> Rate:
    """`COUNT/UNIT` (s, sec, second, m, min, minute, h, hour, d, day); burst defaults to COUNT."""
    match = _RATE_TEXT.fullmatch(text)
    if match is None or match.group(2) not in _PERIODS:
        raise ValueError(f"{_RATE_HELP}; got '{text}'")
    count = int(match.group(1))
    if not 1 <= count <= _MAX_COUNT:
        raise ValueError(f"the count must be from 1 to {_MAX_COUNT}; got {count}")
    written = f"{count}/{match.group(2)}"
    if burst is None:
        return Rate(count, _PERIODS[match.group(2)], count, written)
    return Rate(count, _PERIODS[match.group(2)], burst, f"{written} burst {burst}")


def read_rate_limits(report: Report, line: int, node: Node, policy: PolicyConfig) -> RateLimitsConfig:
    section = read_section(report, "rate_limits", line, node, _KEYS)
    checks = Checks()
    d = _DEFAULT
    key_default: str = d.key
    key = checks.key(section, "key", lambda p, n: read_choice(report, p, n, _CALLER_KEYS), key_default)
    proxies = checks.key(
        section, "trusted_proxies", lambda p, n: _trusted_proxies(report, p, n), d.trusted_proxies
    )
    if key != "client_ip" and proxies:
        report.warn(
            section.entries["trusted_proxies"].line,
            "rate_limits.trusted_proxies: has no effect without key: client_ip",
        )
    backend = checks.key(section, "backend", lambda p, n: _backend(report, p, n), d.backend)
    redis = checks.key(section, "redis", lambda p, n: _redis(report, section, n), d.redis)
    default = checks.key(section, "default", lambda p, n: _rate(report, p, n), d.default)
    public_allowed = key == "client_ip"
    rules = checks.key(
        section, "routes", lambda p, n: _rules(report, p, n, policy, public_allowed=public_allowed), d.rules
    )
    if backend != d.backend and section.get("redis") is None:
        report.warn(section.key_line("backend"), "rate_limits: Redis errors deny requests (redis.on_error)")
    checks.done()
    if default is None and not rules:
        report.warn(line, "rate_limits: no default and no routes, so nothing is limited")
    return RateLimitsConfig(
        file=report.file,
        line=line,
        key=cast(CallerKey, key),
        backend=backend,
        redis=redis,
        default=default,
        rules=rules,
        trusted_proxies=proxies,
    )


def _trusted_proxies(report: Report, path: str, node: Node) -> tuple[Network, ...]:
    """CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses; every bad one reported at its own line."""
    items = read_list(report, path, node, allow_empty=True)
    checks = Checks()
    networks: list[Network] = []
    for i, item in enumerate(items):
        label = f"{path}[{i}]"
        network = checks.attempt(label, lambda: _network(report, label, item), None)  # noqa: B023
        if network is not None:
            networks.append(network)
    checks.done()
    return tuple(networks)


def _network(report: Report, label: str, node: Node) -> Network:
    text = read_str(report, label, node, what="a CIDR such as 10.0.0.0/8 or an address")
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError as bad:
        # strict: 10.0.0.1/8 has host bits set, a typo for 10.0.0.0/8 or for 10.0.0.1/32
        raise report.invalid(node.line, f"{label}: not a CIDR or address ({bad})") from None


def _backend(report: Report, path: str, node: Node) -> str:
    text = read_str(report, path, node)
    if text == "memory":
        return text
    # The URL may carry a password: messages never quote it.
    scheme = urlsplit(text).scheme
    if scheme not in _BACKEND_SCHEMES:
        raise report.invalid(node.line, f"{path}: expected memory or a redis://, rediss:// or unix:// URL")
    # Imported here: only a Redis backend pays for loading the client.
    from redis.asyncio.connection import parse_url

    try:
        parse_url(text)  # what the client will make of it, checked now rather than on the first request
    except ValueError:
        raise report.invalid(
            node.line, f"{path}: not a valid {scheme}:// URL (port, database or options)"
        ) from None
    return text


def _redis(report: Report, top: Section, node: Node) -> RedisOptions:
    section = read_section(report, "rate_limits.redis", top.key_line("redis"), node, _REDIS)
    checks = Checks()
    d = _DEFAULT.redis
    on_error_default: str = d.on_error
    timeout = checks.key(
        section, "timeout", lambda p, n: read_duration(report, p, n, positive=True), d.timeout
    )
    on_error = checks.key(
        section, "on_error", lambda p, n: read_choice(report, p, n, ("deny", "allow")), on_error_default
    )
    if on_error == "allow":
        report.warn(
            section.entries["on_error"].line,
            "rate_limits.redis.on_error: allow forwards unlimited while Redis is down",
        )
    checks.done()
    return RedisOptions(timeout, cast(Literal["deny", "allow"], on_error))


def _rate(report: Report, path: str, node: Node) -> Rate:
    if isinstance(node, Scalar):
        text = read_str(report, path, node, what="a rate such as 10/min or {rate: 10/min, burst: 5}")
        return _parsed(report, path, node.line, text, None)
    section = read_section(report, path, node.line, node, _RATE, required=("rate",))
    rate_node = section.get("rate")
    if rate_node is None:
        raise Invalid  # missing (reported by read_section)
    checks = Checks()
    text = checks.attempt(
        "rate", lambda: read_str(report, f"{path}.rate", rate_node, what="a rate such as 10/min"), ""
    )
    burst = checks.key(section, "burst", lambda p, n: _burst(report, p, n), None)
    checks.done()
    return _parsed(report, f"{path}.rate", rate_node.line, text, burst)


def _parsed(report: Report, path: str, line: int, text: str, burst: int | None) -> Rate:
    try:
        return parse_rate(text, burst)
    except ValueError as bad:
        raise report.invalid(line, f"{path}: {bad}") from None


def _burst(report: Report, path: str, node: Node) -> int:
    if isinstance(node, Scalar) and node.failed:
        raise Invalid  # the `${VAR}` was reported where it was parsed
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
        raise report.invalid(node.line, f"{path}: expected a whole number from 1 to {_MAX_COUNT}")
    return value


def _rules(
    report: Report, path: str, node: Node, policy: PolicyConfig, *, public_allowed: bool
) -> tuple[LimitRule, ...]:
    limits = read_map(report, path, node)
    routes = {_canonical(rule.key): rule.key for rule in policy.routes}
    public = {_canonical(rule.key): rule.key for rule in policy.public}
    nameable = public if public_allowed else {}

    def cover(label: str, key: Scalar) -> tuple[str, ...]:
        return _covered(report, label, key, routes, nameable, policy)

    checks = Checks()
    rules: list[LimitRule] = []
    seen: dict[tuple[str, ...], int] = {}
    for key_node, value in limits.items:
        label = f'{path}["{key_node.text}"]'
        rate = checks.attempt(label, lambda: _rate(report, label, value), None)  # noqa: B023
        covered = checks.attempt(label, lambda: cover(label, key_node), None)  # noqa: B023
        if covered is not None and _ACTION.fullmatch(key_node.text) is None and covered in seen:
            report.error(key_node.line, f"{label}: the same route as the limit at line {seen[covered]}")
            checks.failed.add(label)
            continue
        if rate is None or covered is None:
            continue
        seen.setdefault(covered, key_node.line)
        public_route = len(covered) == 1 and covered[0] in public.values()
        rules.append(LimitRule(key_node.text, rate, key_node.line, covered, public_route))
    checks.done()
    return tuple(rules)


def _covered(
    report: Report,
    label: str,
    key: Scalar,
    routes: dict[str, str],
    public: dict[str, str],
    policy: PolicyConfig,
) -> tuple[str, ...]:
    """The policy route keys a limit key counts; Invalid after reporting a key that names none.

    `public`: canonical -> key of the public routes a limit may name (key: client_ip); empty otherwise.
    """
    text = key.text
    if _ACTION.fullmatch(text) is not None:
        family, action = text.split(":")
        covered = tuple(
            rule.key
            for rule in policy.routes
            if any(s.split(":")[0] == family and s.split(":")[-1] == action for s in rule.scopes)
        )
        if not covered:
            raise report.invalid(
                key.line, f"{label}: no policy route requires {family}:{action} or {family}:<id>:{action}"
            )
        return covered
    try:
        canonical = parse_pattern(text).canonical
    except ValueError as bad:
        raise report.invalid(
            key.line, f"{label}: {bad} (or name a scope action such as agents:run)"
        ) from None
    if canonical in public:
        return (public[canonical],)
    if canonical in {_canonical(rule.key) for rule in policy.public}:
        raise report.invalid(
            key.line, f"{label}: a public route has no caller to limit (unless key: client_ip)"
        )
    if canonical not in routes:
        raise report.invalid(
            key.line, f"{label}: no route of the policy has this key (write it as in policy.routes)"
        )
    return (routes[canonical],)


def _canonical(key: str) -> str:
    return parse_pattern(key).canonical
