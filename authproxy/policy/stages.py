"""The closed set of stages that may follow the gate's allow, one per decision at most.

The gate decides; a stage carries out, for one request, what its route asks beyond the request line:

| stage | route | reads |
|---|---|---|
| ListingFilter | agentos `GET /agents` (teams, workflows), per-item read scopes only | the answer |
| RosterFilter | agentos `GET /config` | the answer |
| ContentPlan | a route's `pin`, `items`, `owner`, `response`, or body `when` | query, body, lookup, answer |
| MessageGrant | agentos `GET /workflows/ws` | each message |
| McpMessages | an MCP endpoint (`mcp.endpoints`) | the body, each message, the answer |
| McpMetadata | its RFC 9728 protected-resource metadata | nothing: the proxy answers |

Each says what it reads (policy/reads.py), which is all a front end needs to know: the proxied port
dispatches on the type in one place (proxy/server.py), the decision port refuses a stage that reads
anything (it would pass the request whole), and `explain`/`authproxy test` describe or run it.

Adding a check after the gate is one more type here, with its `reads`, `label` and `describe()`, and its
case in the proxied port's dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.listing import ListingFilter
from authproxy.policy.mcp.endpoints import McpSite
from authproxy.policy.reads import Reads
from authproxy.policy.roster import RosterFilter
from authproxy.policy.ws_messages import MessageGrant

__all__ = ["ListingFilter", "McpMessages", "McpMetadata", "Reads", "Stage"]


@dataclass(frozen=True, slots=True)
class McpMessages:
    """An MCP endpoint: every JSON-RPC message of a POST is checked against the endpoint's tool rules,
    and `tools/list` answers are cut to what the caller may call."""

    site: McpSite

    label: ClassVar[str] = "mcp"
    reads: ClassVar[Reads] = Reads.BODY | Reads.MESSAGES | Reads.ANSWER

    def describe(self) -> str:
        return f"each JSON-RPC message to {self.site.path} is checked against the endpoint's tool rules"


@dataclass(frozen=True, slots=True)
class McpMetadata:
    """The protected-resource metadata (RFC 9728) of one MCP endpoint, or of the origin (`site` None)."""

    site: McpSite | None

    label: ClassVar[str] = "mcp metadata"
    reads: ClassVar[Reads] = Reads.OWN_ANSWER

    def describe(self) -> str:
        return "answered by the proxy: the MCP protected-resource metadata"


Stage = ListingFilter | RosterFilter | ContentPlan | MessageGrant | McpMessages | McpMetadata
