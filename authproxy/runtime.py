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
from authproxy.config.model import Config, JwksUrl, OidcIssuer
from authproxy.errors import Problem
from authproxy.limits.plan import NO_LIMITS, Limits, build_limits
from authproxy.policy.content.plan import ContentPlans
from authproxy.policy.mcp.endpoints import McpPolicy
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
    policy = config.policy
    table = RouteTable.build(
        policy.public, policy.routes, preset=policy.preset, admin_scope=policy.admin_scope
    )
    remotes = _remote_sources(config, dict(reuse.remotes) if reuse is not None else {})
    keys = KeyRing.build(config.jwt, [remote for _, remote in remotes])
    return Runtime(
        config=config,
        table=table,
        keys=keys,
        verifier=Verifier(config.jwt, keys),
        header_plan=HeaderPlan.build(config.forward, config.jwt),
        warnings=warnings,
        remotes=remotes,
        limits=build_limits(config.rate_limits, reuse=reuse.limits if reuse is not None else None),
        content=ContentPlans.build(policy.routes) or None,
        mcp=McpPolicy.build(config.mcp, preset=policy.preset, admin_scope=policy.admin_scope)
        if config.mcp is not None
        else None,
    )


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
