"""A refusal of any kind, at the gate or in a stage after it, rendered for the route that refused it.

The table (answers/table.py) gives the status, body and challenge; the route's stage adds what its
clients need to act on the refusal: on an MCP endpoint the challenge names the protected-resource metadata
(RFC 9728), so an MCP client knows where to get a token. The proxied port, the decision port and
`authproxy explain` all render through here, so the three answer alike.
"""

from __future__ import annotations

from authproxy.answers.mcp_metadata import Origin, mcp_challenge
from authproxy.answers.table import Rendered, render_decision
from authproxy.errors import RequestRejected
from authproxy.policy.decision import Decision
from authproxy.policy.stages import McpMessages
from authproxy.runtime import Runtime

__all__ = ["render_denial"]


def render_denial(
    rt: Runtime,
    decision: Decision,
    request: Origin | None,
    refusal: RequestRejected | None = None,
) -> Rendered:
    """`request` names the resource by its Host when `mcp.resource` is unset (None: no Host to name it by);
    `refusal` is a stage's, when it gives a body or headers of its own."""
    rendered = render_decision(
        decision,
        preset=rt.config.policy.preset,
        body=refusal.body if refusal is not None else None,
        headers=refusal.headers if refusal is not None else (),
    )
    stage = decision.stage
    if isinstance(stage, McpMessages) and rt.mcp is not None:
        rendered = mcp_challenge(rendered, rt.mcp, stage.site, request)
    return rendered
