"""The routing headers of an MCP POST (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`) held to its body.

The 2026-07-28 transport ("Standard Request Headers", "Server Validation") mirrors body fields into headers
so that a load balancer or gateway can route without reading the body. A component that routes on the header
while another runs the body is the split the spec's server validation closes: `Mcp-Method: initialize`
over a `tools/call` must not reach a server that dispatches on the header. The proxy decides on the body
only, and refuses (400, JSON-RPC `-32020` HeaderMismatch) any request whose headers, when present, say
something else, whatever protocol era it claims: an old client sends none of them, and a header an old
client did not send cannot disagree. A header given twice is a mismatch (which one would a router read?);
`Mcp-Name` in the spec's base64 sentinel form ("Value Encoding") is decoded before it is compared.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from authproxy.errors import MalformedBody
from authproxy.proxy.mcp.jsonrpc import Post, error_object

__all__ = ["HEADER_MISMATCH", "HeaderMismatch", "Headers", "check_routing"]

HEADER_MISMATCH = -32020  # the 2026-07-28 schema's HeaderMismatchError
_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
_SENTINEL = ("=?base64?", "?=")
_NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}  # Mcp-Name's source field


class Headers(Protocol):
    def getall(self, key: str, default: Sequence[str]) -> Sequence[str]: ...


class HeaderMismatch(MalformedBody):
    """A routing header of an MCP POST that does not agree with its body (400, JSON-RPC -32020)."""


def check_routing(headers: Headers, post: Post) -> None:
    """Raise HeaderMismatch when a present routing header disagrees with the body (or is given twice)."""
    method = _one(headers, "Mcp-Method")
    name = _one(headers, "Mcp-Name")
    version = _one(headers, "MCP-Protocol-Version")
    if method is None and name is None and version is None:
        return
    item: Any = post.document
    ident = item.get("id") if isinstance(item, dict) else None
    if post.batch:
        if method is not None or name is not None:
            _refuse(None, "routing headers name one message; the body is a batch")
        for each in post.document:
            _check_version(each, version, None)
        return
    if method is not None and item.get("method") != method:
        _refuse(ident, f"Mcp-Method header {method!r} does not match the body's method")
    if name is not None:
        _check_name(item, _decoded(name, ident), ident)
    _check_version(item, version, ident)


def _one(headers: Headers, header: str) -> str | None:
    values = headers.getall(header, ())
    if len(values) > 1:
        _refuse(None, f"the {header} header is given more than once")
    return values[0] if values else None


def _decoded(value: str, ident: object) -> str:
    start, end = _SENTINEL
    if not (value.startswith(start) and value.endswith(end) and len(value) >= len(start) + len(end)):
        return value
    try:
        return base64.b64decode(value[len(start) : -len(end)], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        _refuse(ident, "the Mcp-Name header's base64 form does not decode")


def _check_name(item: dict[str, Any], name: str, ident: object) -> None:
    field = _NAMED.get(item.get("method", ""))
    params = item.get("params")
    body = params.get(field) if field is not None and isinstance(params, dict) else None
    if body != name:
        _refuse(ident, "the Mcp-Name header does not match the body's name")


def _check_version(item: object, version: str | None, ident: object) -> None:
    if version is None or not isinstance(item, dict):
        return
    params = item.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    body = meta.get(_VERSION_KEY) if isinstance(meta, dict) else None
    if body is not None and body != version:
        _refuse(ident, "the MCP-Protocol-Version header does not match the body's protocol version")


def _refuse(ident: object, reason: str) -> NoReturn:
    rpc_id = ident if isinstance(ident, str | int) and not isinstance(ident, bool) else None
    document = error_object(rpc_id, HEADER_MISMATCH, f"Header mismatch: {reason}", {"error": "bad_request"})
    raise HeaderMismatch(reason, body=document)
