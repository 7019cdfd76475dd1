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
    Report,
    Section,
    model_keys,
    or_none,
    read_choice,
    read_duration,
    read_list,
    read_section,
    read_str,
)
from authproxy.config.limits_model import CallerKey, LimitRule, Rate, RateLimitsConfig, RedisOptions
from authproxy.config.model import PolicyConfig
from authproxy.config.source import MapNode, Node, Scalar
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
_DEFAULT_REDIS = RedisOptions()
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


def read_rate_limits(report: Report, line: int, node: Node, policy: PolicyConfig) -> RateLimitsConfig | None:
    section = or_none(read_section, report, "rate_limits", line, node, _KEYS)
    if section is None:
        return None
    ok = True
    key, proxies = _caller_key(report, section)
    backend: str | None = "memory"
    if (value := section.get("backend")) is not None:
        backend = _backend(report, value)
    redis = _redis(report, section)
    default: Rate | None = None
    if (value := section.get("default")) is not None:
        default = _rate(report, "rate_limits.default", value)
        ok = default is not None
    rules: tuple[LimitRule, ...] | None = ()
    if (value := section.get("routes")) is not None:
        rules = _rules(report, value, policy, public_allowed=key == "client_ip")
    if backend is not None and backend != "memory" and section.get("redis") is None:
        report.warn(section.key_line("backend"), "rate_limits: Redis errors deny requests (redis.on_error)")
    if not ok or None in (key, proxies, backend, redis, rules):
        return None
    if default is None and not rules:
        report.warn(line, "rate_limits: no default and no routes, so nothing is limited")
    return RateLimitsConfig(
        file=report.file,
        line=line,
        key=cast(CallerKey, key),
        backend=cast(str, backend),
        redis=cast(RedisOptions, redis),
        default=default,
        rules=cast(tuple[LimitRule, ...], rules),
        trusted_proxies=cast(tuple[Network, ...], proxies),
    )


def _caller_key(report: Report, section: Section) -> tuple[str | None, tuple[Network, ...] | None]:
    """`key` and `trusted_proxies` (which only a client_ip key reads); None for each one reported."""
    key: str | None = "user_id"
    if (value := section.get("key")) is not None:
        key = or_none(read_choice, report, "rate_limits.key", value, _CALLER_KEYS)
    proxies: tuple[Network, ...] | None = ()
    if (value := section.get("trusted_proxies")) is not None:
        proxies = _trusted_proxies(report, value)
        if key != "client_ip" and proxies:
            report.warn(value.line, "rate_limits.trusted_proxies: has no effect without key: client_ip")
    return key, proxies


def _trusted_proxies(report: Report, node: Node) -> tuple[Network, ...] | None:
    """CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses; every bad one reported at its own line."""
    items = or_none(read_list, report, "rate_limits.trusted_proxies", node, allow_empty=True)
    if items is None:
        return None
    networks: list[Network] = []
    for i, item in enumerate(items):
        path = f"rate_limits.trusted_proxies[{i}]"
        text = or_none(read_str, report, path, item, what="a CIDR such as 10.0.0.0/8 or an address")
        if text is None:
            continue
        try:
            networks.append(ipaddress.ip_network(text.strip()))
        except ValueError as bad:
            # strict: 10.0.0.1/8 has host bits set, a typo for 10.0.0.0/8 or for 10.0.0.1/32
            report.error(item.line, f"rate_limits.trusted_proxies[{i}]: not a CIDR or address ({bad})")
    return tuple(networks) if len(networks) == len(items) else None


def _backend(report: Report, node: Node) -> str | None:
    text = or_none(read_str, report, "rate_limits.backend", node)
    if text is None or text == "memory":
        return text
    # The URL may carry a password: messages never quote it.
    scheme = urlsplit(text).scheme
    if scheme not in _BACKEND_SCHEMES:
        report.error(
            node.line, "rate_limits.backend: expected memory or a redis://, rediss:// or unix:// URL"
        )
        return None
    # Imported here: only a Redis backend pays for loading the client.
    from redis.asyncio.connection import parse_url

    try:
        parse_url(text)  # what the client will make of it, checked now rather than on the first request
    except ValueError:
        report.error(
            node.line, f"rate_limits.backend: not a valid {scheme}:// URL (port, database or options)"
        )
        return None
    return text


def _redis(report: Report, top: Section) -> RedisOptions | None:
    node = top.get("redis")
    if node is None:
        return RedisOptions()
    section = or_none(read_section, report, "rate_limits.redis", top.key_line("redis"), node, _REDIS)
    if section is None:
        return None
    timeout: float | None = _DEFAULT_REDIS.timeout
    if (value := section.get("timeout")) is not None:
        timeout = or_none(read_duration, report, "rate_limits.redis.timeout", value, positive=True)
    on_error: str | None = _DEFAULT_REDIS.on_error
    if (value := section.get("on_error")) is not None:
        on_error = or_none(read_choice, report, "rate_limits.redis.on_error", value, ("deny", "allow"))
        if on_error == "allow":
            report.warn(
                value.line, "rate_limits.redis.on_error: allow forwards unlimited while Redis is down"
            )
    if timeout is None or on_error is None:
        return None
    return RedisOptions(timeout, cast(Literal["deny", "allow"], on_error))


def _rate(report: Report, path: str, node: Node) -> Rate | None:
    if isinstance(node, Scalar):
        text = or_none(read_str, report, path, node, what="a rate such as 10/min or {rate: 10/min, burst: 5}")
        return None if text is None else _parsed(report, path, node.line, text, None)
    section = or_none(read_section, report, path, node.line, node, _RATE, required=("rate",))
    rate_node = section.get("rate") if section is not None else None
    if section is None or rate_node is None:
        return None
    text = or_none(read_str, report, f"{path}.rate", rate_node, what="a rate such as 10/min")
    burst: int | None = None
    if (value := section.get("burst")) is not None:
        burst = _burst(report, f"{path}.burst", value)
        if burst is None:
            return None
    return None if text is None else _parsed(report, f"{path}.rate", rate_node.line, text, burst)


def _parsed(report: Report, path: str, line: int, text: str, burst: int | None) -> Rate | None:
    try:
        return parse_rate(text, burst)
    except ValueError as bad:
        report.error(line, f"{path}: {bad}")
        return None


def _burst(report: Report, path: str, node: Node) -> int | None:
    if isinstance(node, Scalar) and node.failed:
        return None
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
        report.error(node.line, f"{path}: expected a whole number from 1 to {_MAX_COUNT}")
        return None
    return value


def _rules(
    report: Report, node: Node, policy: PolicyConfig, *, public_allowed: bool
) -> tuple[LimitRule, ...] | None:
    if not isinstance(node, MapNode):
        or_none(read_section, report, "rate_limits.routes", node.line, node, ())  # reports the type
        return None
    routes = {_canonical(rule.key): rule.key for rule in policy.routes}
    public = {_canonical(rule.key): rule.key for rule in policy.public}
    rules: list[LimitRule] = []
    seen: dict[tuple[str, ...], int] = {}
    ok = True
    for key_node, value in node.items:
        label = f'rate_limits.routes["{key_node.text}"]'
        rate = _rate(report, label, value)
        covered = _covered(report, label, key_node, routes, public if public_allowed else {}, policy)
        if covered is not None and _ACTION.fullmatch(key_node.text) is None and covered in seen:
            report.error(key_node.line, f"{label}: the same route as the limit at line {seen[covered]}")
            covered = None
        if rate is None or covered is None:
            ok = False
            continue
        seen.setdefault(covered, key_node.line)
        public_route = len(covered) == 1 and covered[0] in public.values()
        rules.append(LimitRule(key_node.text, rate, key_node.line, covered, public_route))
    return tuple(rules) if ok else None


def _covered(
    report: Report,
    label: str,
    key: Scalar,
    routes: dict[str, str],
    public: dict[str, str],
    policy: PolicyConfig,
) -> tuple[str, ...] | None:
    """The policy route keys a limit key counts; None after reporting a key that names none.

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
            report.error(
                key.line, f"{label}: no policy route requires {family}:{action} or {family}:<id>:{action}"
            )
            return None
        return covered
    try:
        canonical = parse_pattern(text).canonical
    except ValueError as bad:
        report.error(key.line, f"{label}: {bad} (or name a scope action such as agents:run)")
        return None
    if canonical in public:
        return (public[canonical],)
    if canonical in {_canonical(rule.key) for rule in policy.public}:
        report.error(key.line, f"{label}: a public route has no caller to limit (unless key: client_ip)")
        return None
    if canonical not in routes:
        report.error(key.line, f"{label}: no route of the policy has this key (write it as in policy.routes)")
        return None
    return (routes[canonical],)


def _canonical(key: str) -> str:
    return parse_pattern(key).canonical
