"""MCP tool rules judged with the route scope semantics: per-item scopes bound from the call's arguments,
alternatives, deny, the admin scope, and which tools a caller's tools/list shows."""

from __future__ import annotations

import pytest

from authproxy.errors import BadItemId
from authproxy.policy.mcp.tools import CompiledTool, check_call, compile_tool, may_call_some

ADMIN = "os:admin"
READ_NOTE = compile_tool("read_note", (("notes:{note_id}:read",),), preset=None)
CANCEL = compile_tool("cancel", (("agents:{agent_id}:run",), ("teams:{team_id}:run",)), preset=None)
CONFIG = compile_tool("config", (("config:read",),), preset="agentos")
DENY = compile_tool("purge", (), preset=None)
ANYONE = compile_tool("whoami", ((),), preset=None)


@pytest.mark.parametrize(
    ("tool", "arguments", "granted", "allowed", "missing"),
    [
        (READ_NOTE, {"note_id": "n1"}, {"notes:n1:read"}, True, ()),
        (READ_NOTE, {"note_id": "n1"}, {"notes:read"}, True, ()),
        (READ_NOTE, {"note_id": "n1"}, {"notes:*:read"}, True, ()),
        (READ_NOTE, {"note_id": "n2"}, {"notes:n1:read"}, False, ("notes:n2:read",)),
        (READ_NOTE, {"note_id": 7}, {"notes:read"}, False, ("notes:{note_id}:read",)),
        (READ_NOTE, {}, {"notes:read"}, False, ("notes:{note_id}:read",)),
        (CANCEL, {"team_id": "t1"}, {"teams:t1:run"}, True, ()),
        (CANCEL, {"agent_id": "a1"}, {"teams:t1:run"}, False, ("agents:a1:run",)),
        (CONFIG, {}, {"system:read"}, True, ()),  # the preset reads legacy system:* as config:*
        (DENY, {}, {"purge"}, False, (ADMIN,)),
        (DENY, {}, {ADMIN}, True, ()),
        (ANYONE, {}, set(), True, ()),
    ],
)
def test_a_call_is_judged_on_its_arguments(
    tool: CompiledTool,
    arguments: dict[str, object],
    granted: set[str],
    allowed: bool,
    missing: tuple[str, ...],
) -> None:
    verdict = check_call(tool, arguments, frozenset(granted), ADMIN)
    assert (verdict.allowed, verdict.missing) == (allowed, missing)


@pytest.mark.parametrize("note_id", ["a:b", "n2\r\nX-Injected: 1", "p2\u0001", "a b", "p\x85"])
def test_an_argument_that_cannot_name_an_item_is_malformed(note_id: str) -> None:
    with pytest.raises(BadItemId):
        check_call(READ_NOTE, {"note_id": note_id}, frozenset({"notes:read"}), ADMIN)


@pytest.mark.parametrize(
    ("tool", "granted", "listed"),
    [
        (READ_NOTE, {"notes:n1:read"}, True),
        (READ_NOTE, {"notes:*:read"}, True),
        (READ_NOTE, {"notes:n1:write", "other:read"}, False),
        (CANCEL, {"teams:t1:run"}, True),
        (CANCEL, {"workflows:w:run"}, False),
        (DENY, {"anything"}, False),
        (DENY, {ADMIN}, True),
        (ANYONE, set(), True),
    ],
)
def test_tools_list_shows_a_tool_some_arguments_would_allow(
    tool: CompiledTool, granted: set[str], listed: bool
) -> None:
    assert may_call_some(tool, frozenset(granted), ADMIN) is listed


def test_a_malformed_scope_does_not_compile() -> None:
    with pytest.raises(ValueError, match="has more than 3"):
        compile_tool("t", (("a:b:c:d",),), preset=None)
