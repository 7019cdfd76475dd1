"""The MCP message checks as pure functions (proxy/mcp/messages.py): what the proxied port carries out
around its read of a POST, and what `explain`/`authproxy test` run on a given body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authproxy.errors import InsufficientScope, MalformedBody, MethodNotAllowed, PayloadTooLarge
from authproxy.policy.mcp.endpoints import McpPolicy
from authproxy.proxy.mcp.jsonrpc import BadMessage
from authproxy.proxy.mcp.messages import Caller, check_method, check_post, post_refusal, refuse_encoding
from tests.rigs.config import hs256_head
from tests.rigs.mcp_checks import checked_post, load_mcp_policy, tool_call

CONFIG = (
    hs256_head()
    + """\
policy:
  admin_scope: ops:admin
  routes:
    "GET /health": []
mcp:
  max_body: 512
  endpoints:
    /mcp:
      tools:
        read_note: ["notes:{{note_id}}:read"]
        whoami: []
        purge: deny
        my_notes: {{scopes: [notes:read], pin: {{user_id: user_id}}}}
"""
)
ALICE = Caller(frozenset({"notes:n1:read", "notes:read"}), "alice", "s1")


@pytest.fixture
def policy(tmp_path: Path) -> McpPolicy:
    return load_mcp_policy(tmp_path, CONFIG.format(secret="s" * 40))


call = tool_call


def post(policy: McpPolicy, document: Any, caller: Caller = ALICE) -> Any:
    return checked_post(policy, document, caller)


def test_an_allowed_call_passes_and_its_pinned_argument_is_written_in(policy: McpPolicy) -> None:
    assert post(policy, call(1, "my_notes"))["params"]["arguments"] == {"user_id": "alice"}
    assert post(policy, call(2, "read_note", note_id="n1"))["params"]["arguments"] == {"note_id": "n1"}


def test_a_refused_call_is_a_403_carrying_its_json_rpc_error(policy: McpPolicy) -> None:
    reader = Caller(frozenset({"notes:n1:read"}), "alice", None)
    with pytest.raises(InsufficientScope) as refused:
        post(policy, call(7, "read_note", note_id="n2"), reader)
    assert refused.value.missing == ("notes:n2:read",)
    body: Any = refused.value.body
    assert (body["id"], body["error"]["code"]) == (7, -32003)


def test_a_pin_naming_another_user_is_refused(policy: McpPolicy) -> None:
    with pytest.raises(InsufficientScope) as refused:
        post(policy, call(3, "my_notes", user_id="bob"))
    assert refused.value.reason == "tool 'my_notes': arguments.user_id must be the caller's own user_id"


def test_a_batch_with_one_refused_call_is_refused_whole(policy: McpPolicy) -> None:
    with pytest.raises(InsufficientScope) as refused:
        post(policy, [call(1, "whoami"), call(2, "purge")])
    errors: Any = refused.value.body
    assert [e["id"] for e in errors] == [1, 2]  # one JSON-RPC error per request of the batch


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        (b"{not json", MalformedBody),
        (b"[]", MalformedBody),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}', MalformedBody),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "' + b"x" * 512 + b'"}', PayloadTooLarge),
    ],
)
def test_a_body_that_is_not_json_rpc_is_refused_with_a_json_rpc_error(
    policy: McpPolicy, data: bytes, refused: type[Exception]
) -> None:
    with pytest.raises(refused) as raised:
        check_post(policy, policy.sites[0], ALICE, data, "application/json")
    body: Any = getattr(raised.value, "body", None)
    assert body["jsonrpc"] == "2.0"


@pytest.mark.parametrize(
    ("types", "encodings"),
    [(("application/json", "application/json"), ()), (("application/json",), ("gzip",))],
)
def test_a_body_framed_two_ways_is_refused_before_it_is_read(
    types: tuple[str, ...], encodings: tuple[str, ...]
) -> None:
    with pytest.raises(BadMessage) as bad:
        refuse_encoding(types, encodings)
    assert isinstance(post_refusal(bad.value), MalformedBody)


@pytest.mark.parametrize(
    ("method", "allowed"), [("POST", True), ("GET", True), ("DELETE", True), ("PUT", False)]
)
def test_only_the_transports_methods_reach_an_mcp_endpoint(method: str, allowed: bool) -> None:
    if allowed:
        check_method(method)
        return
    with pytest.raises(MethodNotAllowed) as refused:
        check_method(method)
    assert refused.value.headers == (("Allow", "DELETE, GET, HEAD, OPTIONS, POST"),)
