"""AgentOS `GET /config` answered with only the agents, teams and workflows the caller may read.

Agno builds the whole answer from the caller's roster: the three summary lists and the filesystem section,
whose namespaces list the agents attached to them (a namespace no visible agent uses is not described).
The answer is read with a bound, cut the same way and re-serialised; anything we cannot cut with certainty
(not a JSON object, a summary without a string `id`, a filesystem section of another shape) fails closed
with 502, never a partial or unfiltered pass.
"""

from __future__ import annotations

import json
from typing import Any

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.roster import RosterFilter
from authproxy.proxy.listings import permitted_items, read_json

__all__ = ["MAX_CONFIG_BYTES", "filter_config"]

MAX_CONFIG_BYTES = 8 * 1024 * 1024


def filter_config(body: bytes, roster: RosterFilter) -> bytes:
    """The /config document cut to `roster`; raises UpstreamUnavailable if it cannot be cut with certainty."""
    document = read_json(body, "the /config response")
    if not isinstance(document, dict):
        raise UpstreamUnavailable("the /config response is not a JSON object and cannot be filtered")
    for family, ids in roster.limited:
        if family in document:
            document[family] = permitted_items(document[family], ids, f"/config {family}")
    agents = roster.ids("agents")
    if agents is not None and document.get("filesystem") is not None:
        document["filesystem"] = _filesystem(document["filesystem"], agents)
    # The upstream's own encoding (Starlette's JSONResponse): compact, UTF-8.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


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
