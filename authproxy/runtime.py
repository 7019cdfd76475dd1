"""Runtime: everything a request needs, built at once from a config file, immutable, swapped atomically.

A request reads `RuntimeHolder.current` once and keeps that reference, so in-flight requests finish under
the policy they started with. This is the only place where configuration becomes live objects.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from authproxy.auth.jwks import JwksSource
from authproxy.auth.keys import KeyRing, RemoteKeys
from authproxy.auth.verify import Verifier
from authproxy.config import Overrides, load_with_warnings
from authproxy.config.headers import HeaderPlan
from authproxy.config.model import Config, JwksUrl, OidcIssuer, PolicyConfig, RouteRule
from authproxy.errors import ConfigError, Problem
from authproxy.limits.plan import NO_LIMITS, Limits, build_limits
from authproxy.policy.agentos_content import preset_routes
from authproxy.policy.content.plan import ContentPlans
from authproxy.policy.mcp.endpoints import McpPolicy
from authproxy.policy.patterns import parse_pattern
from authproxy.policy.scopes import AGENTOS_FAMILIES
from authproxy.policy.stages import McpMessages, McpMetadata, Stage
from authproxy.policy.table import RouteTable

__all__ = ["Runtime", "RuntimeHolder", "build_runtime", "load_runtime"]


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    table: RouteTable
    keys: KeyRing
    verifier: Verifier
    header_plan: HeaderPlan
    warnings: tuple[Problem, ...] = ()
    # The remote key sources inside `keys`, each with the identity a reload uses to keep it running.
    remotes: tuple[tuple[Hashable, RemoteKeys], ...] = ()
    limits: Limits = NO_LIMITS
    content: ContentPlans | None = None  # the rules that read content; None when no rule does
    mcp: McpPolicy | None = None  # MCP endpoints, authorized per JSON-RPC message (policy/mcp, proxy/mcp)
    # Rule key -> the agentos preset route it is (GET /config, GET /workflows/ws): a stage per caller.
    preset_routes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # policy.shadow compiled: its own policy and table, this runtime's keys, no rate limits (a shadow never
    # spends them). Decided beside this one on every request, never answering (proxy/frontend.py).
    shadow: Runtime | None = None


class RuntimeHolder:
    """The live Runtime; `swap` replaces it in one assignment (atomic for readers on the event loop)."""

    __slots__ = ("current", "generation")

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime
        self.generation = 1

    def swap(self, runtime: Runtime) -> Runtime:
        previous, self.current = self.current, runtime
        self.generation += 1
        return previous


def _remote_sources(
    config: Config, reuse: Mapping[Hashable, RemoteKeys]
) -> tuple[tuple[Hashable, RemoteKeys], ...]:
    remotes = [k for k in config.jwt.keys if isinstance(k, JwksUrl | OidcIssuer)]
    if not remotes:
        return ()
    algorithms = frozenset(config.jwt.algorithms)
    built: list[tuple[Hashable, RemoteKeys]] = []
    for source in remotes:
        # Same source, same algorithms: a reload keeps the running fetcher (no refetch, no readiness gap).
        identity = (dataclasses.replace(source, line=0), algorithms)
        built.append((identity, reuse.get(identity) or JwksSource(source, algorithms)))
    return tuple(built)


def build_runtime(
    config: Config, warnings: tuple[Problem, ...] = (), *, reuse: Runtime | None = None
) -> Runtime:
    """Compile a loaded Config into live objects; raises ConfigError for problems only compilation finds.

    With `reuse`, remote key sources identical to one of its own are shared instead of created anew.
    """
    remotes = _remote_sources(config, dict(reuse.remotes) if reuse is not None else {})
    keys = KeyRing.build(config.jwt, [remote for _, remote in remotes])
    compiled = _compile(config, config.policy)
    runtime = Runtime(
        config=config,
        table=compiled.table,
        keys=keys,
        verifier=Verifier(config.jwt, keys),
        header_plan=HeaderPlan.build(config.forward, config.jwt),
        warnings=warnings,
        remotes=remotes,
        limits=build_limits(config.rate_limits, reuse=reuse.limits if reuse is not None else None),
        content=compiled.content,
        mcp=compiled.mcp,
        preset_routes=compiled.preset_routes,
    )
    if config.policy.shadow is None:
        return runtime
    policy = config.policy.shadow.policy
    other = _compile(config, policy)
    shadow = dataclasses.replace(
        runtime,
        config=dataclasses.replace(config, policy=policy),
        table=other.table,
        remotes=(),  # the keys are the enforced runtime's, closed and reused through it
        limits=NO_LIMITS,
        content=other.content,
        mcp=other.mcp,
        preset_routes=other.preset_routes,
    )
    return dataclasses.replace(runtime, shadow=shadow)


@dataclass(frozen=True, slots=True)
class _Compiled:
    table: RouteTable
    content: ContentPlans | None
    mcp: McpPolicy | None
    preset_routes: Mapping[str, str]


def _compile(config: Config, policy: PolicyConfig) -> _Compiled:
    """What deciding by `policy` needs: its route table, content rules, MCP endpoints and preset stages."""
    table = RouteTable.build(policy.public, policy.routes, preset=policy.preset)
    mcp = (
        McpPolicy.build(config.mcp, preset=policy.preset, admin_scope=policy.admin_scope)
        if config.mcp is not None
        else None
    )
    marks = _path_stages(mcp)
    table.mark(marks)
    presets = preset_routes(policy.preset, [rule.key for rule in policy.routes])
    _one_stage_per_route(policy, marks, presets)
    return _Compiled(table, ContentPlans.build(policy.routes) or None, mcp, presets)


def _path_stages(mcp: McpPolicy | None) -> dict[tuple[str, ...], Stage]:
    if mcp is None:
        return {}
    marks: dict[tuple[str, ...], Stage] = {}
    for path, (site, metadata) in mcp.marks().items():
        if metadata:
            marks[path] = McpMetadata(site)
        elif site is not None:
            marks[path] = McpMessages(site)
    return marks


def _one_stage_per_route(
    policy: PolicyConfig, marks: Mapping[tuple[str, ...], Stage], presets: Mapping[str, str]
) -> None:
    """A route carries one stage: a content rule, or a condition reading the body (the content stage judges
    it), cannot also be an MCP endpoint or a preset-checked route (one of them would silently not run)."""
    listings = {f"GET /{family}" for family in AGENTOS_FAMILIES} if policy.preset == "agentos" else set()
    problems = [
        Problem(rule.file, rule.line, f"route {rule.key!r}: its {_reader(rule)} cannot run where {why}")
        for rule in policy.routes
        if (rule.content is not None or (rule.when is not None and rule.when.reads_body))
        and (
            why := "the MCP endpoint checks each message"
            if _literal_path(rule.key) in marks
            else "the agentos preset checks this route"
            if rule.key in presets or parse_pattern(rule.key).canonical in listings
            else ""
        )
    ]
    if problems:
        raise ConfigError(problems)


def _reader(rule: RouteRule) -> str:
    return "content rule" if rule.content is not None else "condition on the body"


def load_runtime(
    path: str | os.PathLike[str],
    *,
    listen: str | None = None,
    upstream: str | None = None,
    reuse: Runtime | None = None,
) -> Runtime:
    """Load, validate and compile a config file (plus command-line overrides); raises ConfigError."""
    config, warnings = load_with_warnings(path, overrides=Overrides(listen, upstream))
    return build_runtime(config, tuple(warnings), reuse=reuse)


def _literal_path(key: str) -> tuple[str, ...] | None:
    pattern = parse_pattern(key)
    if pattern.tail or any(segment is None for segment in pattern.segments):
        return None
    return tuple(segment for segment in pattern.segments if segment is not None)
