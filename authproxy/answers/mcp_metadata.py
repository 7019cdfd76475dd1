"""RFC 9728 protected-resource metadata, and the `resource_metadata` parameter of challenges on MCP paths.

An MCP client that meets a 401 reads `resource_metadata` from the challenge, fetches that document, and
learns from `authorization_servers` where to log in (MCP authorization, "Authorization Server Discovery").
The resource is the public URL of the endpoint: `mcp.resource` when set (a proxy behind TLS termination
cannot see its public scheme), else the scheme and Host the request came with.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Protocol

from multidict import CIMultiDictProxy

from authproxy.answers.table import SERVER, OwnAnswer, Rendered, render_answer
from authproxy.config.mcp_model import METADATA_PATH
from authproxy.policy.mcp.endpoints import McpPolicy, McpSite

__all__ = ["Origin", "mcp_challenge", "metadata_document", "metadata_url", "with_resource_metadata"]


class Origin(Protocol):
    """What of a request names the resource: its Host, and the scheme it came in with."""

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    @property
    def scheme(self) -> str: ...


# One Host header value that is a host name or address and an optional port, nothing else.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


def _base(policy: McpPolicy, request: Origin | None) -> str | None:
    if policy.config.resource is not None:
        return policy.config.resource
    if request is None:
        return None  # `authproxy explain`: no Host to name the resource by
    hosts = request.headers.getall("Host", [])
    if len(hosts) != 1 or _HOST.fullmatch(hosts[0]) is None:
        return None
    return f"{request.scheme}://{hosts[0]}"


def metadata_url(policy: McpPolicy, site: McpSite, request: Origin | None) -> str | None:
    base = _base(policy, request)
    return None if base is None else f"{base}{METADATA_PATH}{site.path.rstrip('/')}"


def with_resource_metadata(rendered: Rendered, url: str | None) -> Rendered:
    """The same answer, its Bearer challenge naming where the resource metadata is."""
    return rendered if url is None else _with_param(rendered, f'resource_metadata="{url}"')


def mcp_challenge(rendered: Rendered, policy: McpPolicy, site: McpSite, request: Origin | None) -> Rendered:
    """A refusal on an MCP endpoint, its challenge naming the resource metadata and, on a 401, the scopes
    the endpoint's tools need (MCP authorization, "Protected Resource Metadata Discovery Requirements": the
    client asks for them at its first authorization, rather than meeting a 403 per tool). A 403 names
    the refused operation's own scopes already (proxy/responses.py)."""
    if rendered.status == 401:
        scopes = " ".join(site.scopes())
        if scopes:
            rendered = _with_param(rendered, f'scope="{scopes}"')
    return with_resource_metadata(rendered, metadata_url(policy, site, request))


def _with_param(rendered: Rendered, param: str) -> Rendered:
    headers = tuple(
        (name, f"{value}, {param}" if name == "WWW-Authenticate" else value)
        for name, value in rendered.headers
    )
    return replace(rendered, headers=headers)


def metadata_document(policy: McpPolicy, site: McpSite | None, request: Origin) -> Rendered:
    """The metadata of one endpoint (path-suffixed form) or of the origin (the root form)."""
    base = _base(policy, request)
    if base is None:
        return render_answer(OwnAnswer.HOST_NOT_ONE_HOST)
    document: dict[str, object] = {
        "resource": base + (site.path if site is not None else ""),
        "bearer_methods_supported": ["header"],
    }
    if policy.config.authorization_servers:
        document["authorization_servers"] = list(policy.config.authorization_servers)
    sites = (site,) if site is not None else policy.sites
    document["scopes_supported"] = sorted({scope for s in sites for scope in s.scopes()})
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = (("Content-Type", "application/json"), ("Cache-Control", "max-age=300"), ("Server", SERVER))
    return Rendered(200, headers, body)
