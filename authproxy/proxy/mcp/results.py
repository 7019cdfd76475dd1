"""Tool results the upstream narrows per caller, narrowed the same way by the proxy.

AgentOS's `get_agentos_config` returns the roster cut to the caller's read scopes, exactly as its REST
`GET /config` does (agno/os/mcp.py filters with the same access check). In front of an AgentOS that does
not enforce its own RBAC, the proxy cuts the result with the one roster filter of `GET /config`
(policy/roster.py decides, proxy/config_roster.py cuts), so a caller holding `agents:<id>:read` gets
that agent and `config:read` alone an empty roster, as Agno answers, rather than a refusal.

The result carries the roster twice: `structuredContent` (the object) and a text content item (its JSON).
Both are cut; anything else in the result (another content type, text that is not a JSON object) cannot be
shown to hold no more than the caller may see and fails closed (UpstreamUnavailable). An error result
(`isError`) holds no roster and passes as it came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.roster import RosterFilter
from authproxy.proxy.config_roster import filter_config
from authproxy.standards.json_text import read_json, write_json

__all__ = ["ResultCut", "roster_cut"]

ResultCut = Callable[[Any], None]  # cuts one tools/call result in place


def roster_cut(roster: RosterFilter) -> ResultCut:
    """The cut of a roster tool's result to what `roster` lets the caller read."""

    def cut(result: Any) -> None:
        if not isinstance(result, dict):
            raise UpstreamUnavailable("the tool result is not an object and cannot be filtered")
        if result.get("isError") is True:
            return
        if "structuredContent" in result:
            result["structuredContent"] = read_json(_cut(write_json(result["structuredContent"]), roster))
        content = result.get("content", [])
        if not isinstance(content, list):
            raise UpstreamUnavailable("the tool result's content is not a list and cannot be filtered")
        for item in content:
            if (
                not isinstance(item, dict)
                or item.get("type") != "text"
                or not isinstance(item.get("text"), str)
            ):
                raise UpstreamUnavailable(
                    "the tool result holds content other than text and cannot be filtered"
                )
            item["text"] = _cut(item["text"].encode("utf-8"), roster).decode("utf-8")

    return cut


def _cut(document: bytes, roster: RosterFilter) -> bytes:
    # The roster of the tool is the summary form of /config: the same families, cut by the same filter.
    return filter_config(document, roster, status=200)
