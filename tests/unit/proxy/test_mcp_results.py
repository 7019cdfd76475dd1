"""get_agentos_config's result cut to the caller's roster (proxy/mcp/results.py) through the answer filter of
an MCP POST (proxy/mcp/listing.py): both forms of the roster cut alike, anything else failing closed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.roster import roster_filter
from authproxy.proxy.mcp.listing import EventFilter, filter_json
from authproxy.proxy.mcp.results import roster_cut

CONFIG = {
    "os_id": "os",
    "databases": ["db"],
    "agents": [{"id": "a1"}, {"id": "a2"}],
    "teams": [{"id": "t1"}],
    "workflows": [{"id": "w1"}],
}


def answer(ident: int, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": ident, "result": result}).encode()


def config_result(config: Any = CONFIG) -> dict[str, Any]:
    text = json.dumps(config, separators=(",", ":"))
    return {"content": [{"type": "text", "text": text}], "isError": False, "structuredContent": config}


def cut_for(*scopes: str) -> dict[object, Any]:
    roster = roster_filter(scopes, "agent_os:admin")
    assert roster is not None
    return {7: roster_cut(roster)}


def cut(body: bytes, *scopes: str, status: int = 200) -> Any:
    """The answer to a POST whose call 7 is get_agentos_config, by a caller holding `scopes`."""
    return json.loads(filter_json(body, [], lambda _: True, status=status, results=cut_for(*scopes)))


def ids(result: dict[str, Any]) -> list[dict[str, list[str]]]:
    forms = (result["structuredContent"], json.loads(result["content"][0]["text"]))
    return [{f: [i["id"] for i in form[f]] for f in ("agents", "teams", "workflows")} for form in forms]


@pytest.mark.parametrize(
    ("scopes", "shown"),
    [
        (("config:read", "agents:a2:read"), {"agents": ["a2"], "teams": [], "workflows": []}),
        (
            ("config:read", "agents:read", "teams:*:read"),
            {"agents": ["a1", "a2"], "teams": ["t1"], "workflows": []},
        ),
        (("config:read",), {"agents": [], "teams": [], "workflows": []}),
    ],
)
def test_both_forms_of_the_roster_are_cut_to_the_callers_reads(scopes: tuple[str, ...], shown: Any) -> None:
    out = json.loads(
        filter_json(answer(7, config_result()), [], lambda _: True, status=200, results=cut_for(*scopes))
    )
    assert ids(out["result"]) == [shown, shown]
    assert out["result"]["structuredContent"]["databases"] == ["db"]


def test_only_the_calls_named_are_cut_and_in_a_stream_too() -> None:
    other = json.loads(
        filter_json(answer(8, config_result()), [], lambda _: True, status=200, results=cut_for("x"))
    )
    assert ids(other["result"])[0]["agents"] == ["a1", "a2"]  # id 8 is another call's answer
    events = EventFilter([], lambda _: True, status=200, results=cut_for("config:read"))
    data = events.feed(b"event: message\ndata: " + answer(7, config_result()) + b"\n\n")
    assert ids(json.loads(data.split(b"data: ", 1)[1])["result"])[0]["agents"] == []


def test_an_error_result_passes_as_it_came() -> None:
    result = {"content": [{"type": "text", "text": "Insufficient permissions"}], "isError": True}
    out = cut(answer(7, result), "x")
    assert out["result"] == result


@pytest.mark.parametrize(
    "result",
    [
        {"content": [{"type": "image", "data": "", "mimeType": "image/png"}]},
        {"content": [{"type": "text", "text": "not json"}]},
        {"content": [{"type": "text", "text": "[]"}]},
        {"content": "text"},
        {"content": [], "structuredContent": {"agents": [{"name": "no id"}]}},
        "a string",
    ],
    ids=["image", "text-not-json", "text-not-object", "content-not-list", "item-without-id", "not-object"],
)
def test_a_result_that_cannot_be_cut_with_certainty_fails_closed(result: Any) -> None:
    with pytest.raises(UpstreamUnavailable):
        cut(answer(7, result), "config:read")


def test_an_answer_other_than_200_holding_the_result_fails_closed() -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_json(
            answer(7, config_result()), [], lambda _: True, status=500, results=cut_for("config:read")
        )
