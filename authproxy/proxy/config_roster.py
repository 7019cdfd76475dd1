"""AgentOS `GET /config` answered with only the agents, teams and workflows the caller may read.

Agno builds the whole answer from the caller's roster: the three summary lists and the filesystem section,
whose namespaces list the agents attached to them (a namespace no visible agent uses is not described).
The answer is read with a bound, cut the same way and re-serialised; anything we cannot cut with certainty
(not a JSON object, a summary without a string `id`, a filesystem section of another shape, a duplicate key)
fails closed with 502, never a partial or unfiltered pass. An answer other than 200 passes only when it holds
none of the sections the filter cuts.
"""

from __future__ import annotations

from typing import Any

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.roster import ROSTER_FAMILIES, RosterFilter
from authproxy.proxy.listings import nothing_to_filter, permitted_items, read_answer
from authproxy.standards.json_text import write_json

__all__ = ["MAX_CONFIG_BYTES", "filter_config"]

MAX_CONFIG_BYTES = 8 * 1024 * 1024
_CUT = frozenset({*ROSTER_FAMILIES, "filesystem"})  # the sections of /config cut per caller


def filter_config(body: bytes, roster: RosterFilter, *, status: int) -> bytes:
    """The /config document cut to `roster`; raises UpstreamUnavailable if it cannot be cut with certainty."""
    if status != 200:
        return nothing_to_filter(body, _holds_roster, "the /config response")
    document = read_answer(body, "the /config response")
    if not isinstance(document, dict):
        raise UpstreamUnavailable("the /config response is not a JSON object and cannot be filtered")
    for family, ids in roster.limited:
        if family in document:
            document[family] = permitted_items(document[family], ids, f"/config {family}")
    agents = roster.ids("agents")
    if agents is not None and document.get("filesystem") is not None:
        document["filesystem"] = _filesystem(document["filesystem"], agents)
    # The upstream's own encoding (Starlette's JSONResponse) is this canonical one too: compact, UTF-8.
    return write_json(document)


def _holds_roster(document: Any) -> bool:
    return isinstance(document, dict) and not _CUT.isdisjoint(document)


def _filesystem(section: Any, agents: frozenset[str]) -> dict[str, Any]:
    namespaces = section.get("namespaces") if isinstance(section, dict) else None
    if not isinstance(namespaces, list):
        raise UpstreamUnavailable("/config filesystem has no namespace list and cannot be filtered")
    kept = []
    for namespace in namespaces:
        if not isinstance(namespace, dict):
            raise UpstreamUnavailable("a /config filesystem namespace is not an object")
        linked = permitted_items(namespace.get("agents"), agents, "/config filesystem agents")
        if linked:  # Agno describes a namespace only through the agents the caller sees
            kept.append({**namespace, "agents": linked})
    return {**section, "namespaces": kept}
