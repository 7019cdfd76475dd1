"""Per-message authorization of AgentOS's workflow WebSocket (`GET /workflows/ws`), as Agno 3.1 does it.

AgentOS accepts the upgrade and decides each message: `start-workflow`, `reconnect` and `continue-workflow`
need `workflows:run` on the workflow their `workflow_id` names (the same check as
`POST /workflows/{id}/runs`). Behind authproxy the upgrade is authenticated by the gate, which grants the
caller's runnable workflows (`MessageGrant`); each client text frame is then judged here. A refused message
is answered with the very frame Agno sends and never reaches the upstream. A frame Agno cannot read (not a
JSON object) makes Agno drop the connection; so does the proxy, and the frame is not forwarded. A frame the
strict JSON reader refuses (a repeated key, NaN, nesting past the bound: readings that could differ from the
upstream's) is dropped the same way. What the upstream receives is the proxy's own encoding of the message it
judged, never the client's text. As Agno does, these three messages carry the caller's own `user_id`, so a
run is never attributed to someone else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from authproxy.policy.reads import Reads
from authproxy.policy.scopes import granted_items
from authproxy.standards.json_text import read_json, write_json
from authproxy.standards.media import Unreadable

__all__ = ["DROP", "MessageGrant", "Verdict", "judge_message", "workflow_grant"]

_FAMILY, _ACTION = "workflows", "run"
# action -> Agno's error text when the caller may not run the named workflow (agno/os/router.py)
_REFUSALS = {
    "start-workflow": "Insufficient permissions to run this workflow",
    "reconnect": "Insufficient permissions to reconnect to this workflow",
    "continue-workflow": "Insufficient permissions to continue this workflow",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    send: str | None  # the frame passed to the upstream: the message re-encoded, its user_id pinned
    reply: str | None = None  # the error frame answered to the client instead
    refused: str | None = None  # the refused message's action, for the log


DROP = Verdict(None)  # a frame Agno cannot read: the connection ends, as Agno ends it


@dataclass(frozen=True, slots=True)
class MessageGrant:
    """What the caller's workflow messages may do: which workflows they may run (None: every one), and
    the identity Agno writes into them (the token's subject; an admin's own choice is kept)."""

    workflows: frozenset[str] | None
    user_id: str | None = None
    admin: bool = False

    label: ClassVar[str] = "message check"
    reads: ClassVar[Reads] = Reads.MESSAGES

    def describe(self) -> str:
        if self.workflows is None:
            return f"{_FAMILY}:{_ACTION} on every workflow"
        return f"{_FAMILY}:{_ACTION} limited to: {' '.join(sorted(self.workflows)) or '(nothing)'}"


def workflow_grant(
    granted: Iterable[str], admin_scope: str | None, user_id: str | None = None
) -> MessageGrant:
    """Admin, `workflows:run` or `workflows:*:run`: every workflow; else the ids of `workflows:<id>:run`."""
    scopes = frozenset(granted)
    admin = admin_scope is not None and admin_scope in scopes
    ids = None if admin else granted_items(scopes, _FAMILY, _ACTION)
    return MessageGrant(ids, user_id, admin)


def judge_message(text: str, grant: MessageGrant) -> Verdict:
    """What to do with one client text frame."""
    try:
        message: Any = read_json(text.encode("utf-8", "surrogatepass"), what="the message")
    except Unreadable:
        return DROP
    if not isinstance(message, dict):
        return DROP  # Agno calls message.get() and the handler dies
    action = message.get("action")
    refusal = _REFUSALS.get(action) if isinstance(action, str) else None  # any JSON value may be there
    if refusal is None:
        return Verdict(write_json(message).decode())
    workflow_id = message.get("workflow_id")
    # Agno compares the id as given: a missing, empty or non-string id passes family-wide grants only.
    if grant.workflows is not None and not (isinstance(workflow_id, str) and workflow_id in grant.workflows):
        # Agno's frame, byte for byte (json.dumps with its default separators)
        return Verdict(None, json.dumps({"event": "error", "error": refusal}), action)
    _pin_identity(message, grant)
    return Verdict(write_json(message).decode())


def _pin_identity(message: dict[str, Any], grant: MessageGrant) -> None:
    """Agno's rule: an admin's message keeps its user_id (the subject if it has none); anyone else's
    user_id is the subject."""
    if grant.user_id is None or message.get("user_id") == grant.user_id:
        return
    if grant.admin and "user_id" in message:
        return
    message["user_id"] = grant.user_id
