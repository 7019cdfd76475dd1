"""The gate's two MCP checks of the HTTP request itself: the caller's `Origin`, and the token's audience.

Both run in the gate (gate.py), so the proxied port, the decision port and `authproxy explain` refuse alike.

Origin (Streamable HTTP, "Security & Endpoint"): a present `Origin` that is not allowed is refused 403
before the token is looked at, so a page a browser was lured to cannot drive the endpoint through the
user's browser (DNS rebinding). Allowed: `mcp.allowed_origins`; unset, the origin of `mcp.resource`; with
no resource either, the request's own Host (either scheme: the gate is shared with `explain` and the
decision port, which do not see the client's scheme). A request without `Origin` is not a browser's.

Audience (MCP authorization, "Token Audience Binding and Validation", RFC 8707): with `mcp.resource` set,
a token is accepted on an endpoint only when its `aud` names that endpoint's resource, the `resource` the
RFC 9728 metadata advertises (`https://notes.example.com/mcp`): a token the authorization server minted
for another resource must not be spent here. `jwt.audience`, when set, still holds too: it is the
deployment's check of every token, this one the endpoint's; a deployment whose MCP tokens carry only the
resource lists it in `jwt.audience` (or leaves that unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from authproxy.errors import DenialCode, InvalidToken, RequestRejected
from authproxy.policy.mcp.endpoints import McpPolicy, McpSite

__all__ = ["ForeignOrigin", "WrongResource", "check_audience", "check_origin", "resource_of"]


class ForeignOrigin(RequestRejected):
    """An MCP request whose `Origin` is present and not allowed (403)."""

    code: ClassVar[DenialCode] = "forbidden"
    status: ClassVar[int] = 403


class WrongResource(InvalidToken):
    """A valid token whose `aud` does not name the MCP endpoint's advertised resource (401)."""


def resource_of(policy: McpPolicy, site: McpSite) -> str | None:
    """The endpoint's resource as its metadata names it; None without `mcp.resource` (then the metadata
    names the request's own Host, which a token cannot have been bound to in advance)."""
    base = policy.config.resource
    return None if base is None else base + site.path


def check_origin(policy: McpPolicy, origins: list[str], hosts: list[str]) -> None:
    """Raise ForeignOrigin when the request's `Origin` (all its values) is present and not allowed."""
    if not origins:
        return
    allowed = _allowed(policy, hosts)
    if len(origins) > 1 or origins[0].lower() not in allowed:
        raise ForeignOrigin("the request's Origin is not allowed on this MCP endpoint")


def _allowed(policy: McpPolicy, hosts: list[str]) -> frozenset[str]:
    config = policy.config
    if config.allowed_origins is not None:
        return frozenset(origin.lower() for origin in config.allowed_origins)
    if config.resource is not None:
        return frozenset({config.resource.lower()})  # a base URL (config/mcp.py): its origin as written
    if len(hosts) != 1:
        return frozenset()
    host = hosts[0].lower()
    return frozenset({f"http://{host}", f"https://{host}"})


def check_audience(policy: McpPolicy, site: McpSite, claims: Mapping[str, Any]) -> None:
    """Raise WrongResource when the endpoint has a resource and the token's `aud` does not name it."""
    resource = resource_of(policy, site)
    if resource is None:
        return
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if resource not in named:
        raise WrongResource("the token's audience is not this MCP resource")
