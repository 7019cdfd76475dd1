"""The JSON-RPC 2.0 envelope of an MCP POST: parsed strictly, answered in kind.

A body that is not JSON, not a JSON-RPC message or batch, or a `tools/call` without a tool name is a
BadMessage: the proxy answers 400 and nothing reaches the upstream. What the proxy answers itself on an
MCP path is a JSON-RPC error object, because MCP clients read the error from the body (the official SDK
surfaces a JSON-RPC error body of a 4xx answer as the call's error); `detail` rides along top-level,
where JSON-RPC readers ignore it and AgentOS clients find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authproxy.errors import RequestRejected
from authproxy.standards.json_text import read_json, write_json
from authproxy.standards.media import Unreadable, check_charset, parse_media_type

__all__ = [
    "FORBIDDEN",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "BadMessage",
    "Message",
    "Post",
    "error_object",
    "parse_post",
    "set_arguments",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
# JSON-RPC leaves -32000..-32099 to the server; MCP names no code for authorization refusals.
FORBIDDEN = -32003

Id = str | int


class BadMessage(RequestRejected):
    """The body is not what an MCP POST carries; `rpc_code` is the JSON-RPC error code to answer with."""

    def __init__(self, reason: str, rpc_code: int = INVALID_REQUEST) -> None:
        super().__init__(reason)
        self.rpc_code = rpc_code


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # "request" | "notification" | "response"
    id: Id | None = None
    method: str | None = None
    tool: str | None = None  # tools/call only
    arguments: dict[str, Any] = field(default_factory=dict)  # tools/call only


@dataclass(frozen=True, slots=True)
class Post:
    messages: tuple[Message, ...]
    document: Any  # the body as read; what goes upstream is `encode()` of it
    batch: bool

    def encode(self) -> bytes:
        """The canonical encoding of the body that was checked (pinned arguments included)."""
        return write_json(self.document)

    def requests(self, method: str) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.kind == "request" and m.method == method)


def parse_post(body: bytes, content_type: str) -> Post:
    """The messages of one POST body, read strictly (a repeated key, NaN, a non-UTF-8 body or charset, or
    nesting past the bound could be read two ways: {"name": "whoami", "name": "purge"} must not be judged
    as one tool and run as another); raises BadMessage."""
    try:
        if content_type:  # the SDKs always send one; a POST without it is read as JSON as before
            check_charset(parse_media_type(content_type), "an MCP request")
        document = read_json(body)
    except Unreadable as bad:
        raise BadMessage(bad.reason, PARSE_ERROR) from None
    if isinstance(document, list):
        if not document:
            raise BadMessage("an empty JSON-RPC batch")
        return Post(tuple(_message(item) for item in document), document, batch=True)
    return Post((_message(document),), document, batch=False)


def _message(item: object) -> Message:
    if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
        raise BadMessage("not a JSON-RPC 2.0 message")
    has_id = "id" in item
    ident = item.get("id")
    bad_id = has_id and (isinstance(ident, bool) or not isinstance(ident, str | int))
    if bad_id and ("method" in item or ident is not None):  # only an error answer may carry id null
        raise BadMessage("a JSON-RPC id must be a string or an integer")
    method = item.get("method")
    if method is None:
        if not has_id or ("result" in item) == ("error" in item):
            raise BadMessage("a JSON-RPC message needs a method, or an id with a result or an error")
        return Message("response", ident)
    if not isinstance(method, str) or not method:
        raise BadMessage("a JSON-RPC method must be a non-empty string")
    if not has_id:
        return Message("notification", method=method)
    if method != "tools/call":
        return Message("request", ident, method)
    name, arguments = _tool_call(item.get("params"))
    return Message("request", ident, method, name, arguments)


def _tool_call(params: object) -> tuple[str, dict[str, Any]]:
    """A tools/call's tool name and arguments (an absent or null `arguments` is none)."""
    name = params.get("name") if isinstance(params, dict) else None
    if not isinstance(name, str) or not name:
        raise BadMessage("tools/call needs params.name, the tool's name", INVALID_PARAMS)
    assert isinstance(params, dict)
    arguments = params.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise BadMessage("tools/call params.arguments must be an object", INVALID_PARAMS)
    if len({key.casefold() for key in arguments}) != len(arguments):
        # Go's encoding/json (and so Go MCP servers) binds keys to fields ignoring case, the last one winning:
        # {"user_id": "alice", "USER_ID": "bob"} would be checked as one argument and run as the other.
        raise BadMessage("tools/call params.arguments repeats a name in other letter case", INVALID_PARAMS)
    return name, arguments


def error_object(ident: Id | None, code: int, message: str, data: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC error response, with our `detail` top-level for readers of authproxy's own answers."""
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "error": {"code": code, "message": message, "data": data},
        "detail": message,
    }


def set_arguments(post: Post, edits: list[tuple[int, str, str]]) -> None:
    """Set `arguments[name] = value` in the tools/call at each message index (a pinned id)."""
    messages = post.document if post.batch else [post.document]
    for index, name, value in edits:
        params = messages[index]["params"]
        if not isinstance(params.get("arguments"), dict):
            params["arguments"] = {}
        params["arguments"][name] = value
