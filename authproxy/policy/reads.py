"""What a stage after the gate reads beyond the request line: the one fact every front end asks of it.

The proxied port can carry out any stage. A front end that only asks for a decision (the decision port behind
Envoy, nginx, Traefik) sees the request line and headers, never the body, the answer or the messages, and
cannot rewrite the query: it can enforce a decision only when its stage reads nothing (`Reads.NOTHING`).
"""

from __future__ import annotations

import enum

__all__ = ["Reads"]


class Reads(enum.Flag):
    NOTHING = 0
    QUERY = enum.auto()  # the target's query, which a pin may also rewrite
    BODY = enum.auto()  # the request body, read whole (bounded) and forwarded in the proxy's own encoding
    LOOKUP = enum.auto()  # a request of the proxy's own to the upstream, before forwarding
    ANSWER = enum.auto()  # the upstream's answer, read whole or event by event, and cut or checked
    MESSAGES = enum.auto()  # each message of a WebSocket, or each JSON-RPC message of an MCP POST
    OWN_ANSWER = enum.auto()  # answered by the proxy itself (MCP protected-resource metadata)
