from __future__ import annotations

import json
from typing import Any

import pytest

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.roster import RosterFilter
from authproxy.proxy.config_roster import filter_config

ONLY_A1 = RosterFilter((("agents", frozenset({"a1"})), ("workflows", frozenset())))


def config(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "os_id": "os",
        "available_models": [{"id": "gpt", "provider": "OpenAI"}],
        "agents": [{"id": "a1", "name": "one"}, {"id": "a2", "name": "two"}],
        "teams": [{"id": "t1"}],
        "workflows": [{"id": "w1"}],
        "filesystem": {
            "namespaces": [
                {"namespace": "shared", "agents": [{"id": "a1"}, {"id": "a2", "access": "read_only"}]},
                {"namespace": "private", "agents": [{"id": "a2"}]},
            ]
        },
        "session": {"dbs": []},
    }
    document.update(overrides)
    return document


def cut(document: Any, roster: RosterFilter = ONLY_A1) -> Any:
    return json.loads(filter_config(json.dumps(document).encode(), roster, status=200))


def test_config_keeps_the_readable_items_and_everything_else() -> None:
    got = cut(config())
    assert got["agents"] == [{"id": "a1", "name": "one"}]
    assert got["teams"] == [{"id": "t1"}]  # not limited: shown whole
    assert got["workflows"] == []
    assert got["filesystem"] == {"namespaces": [{"namespace": "shared", "agents": [{"id": "a1"}]}]}
    assert {k: v for k, v in got.items() if k not in ("agents", "workflows", "filesystem")} == {
        k: v for k, v in config().items() if k not in ("agents", "workflows", "filesystem")
    }


def test_config_without_agent_limit_keeps_the_filesystem_whole() -> None:
    roster = RosterFilter((("teams", frozenset()),))
    assert cut(config(), roster)["filesystem"] == config()["filesystem"]


def test_absent_sections_stay_absent() -> None:
    document = config()
    del document["workflows"], document["filesystem"]
    got = cut(document)
    assert "workflows" not in got and "filesystem" not in got


def test_reserialised_as_compact_utf8() -> None:
    body = filter_config(json.dumps(config(description="café")).encode(), ONLY_A1, status=200)
    assert "café".encode() in body and b", " not in body


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        json.dumps(config(agents={"a1": {}})).encode(),
        json.dumps(config(agents=[{"name": "no id"}])).encode(),
        json.dumps(config(workflows=[{"id": 3}])).encode(),
        json.dumps(config(agents=["a1"])).encode(),
        json.dumps(config(filesystem={"namespaces": {}})).encode(),
        json.dumps(config(filesystem=[])).encode(),
        json.dumps(config(filesystem={"namespaces": ["shared"]})).encode(),
        json.dumps(config(filesystem={"namespaces": [{"namespace": "x"}]})).encode(),
        json.dumps(config(filesystem={"namespaces": [{"agents": [{"id": None}]}]})).encode(),
        b'{"agents": [], "agents": [{"id": "a2"}]}',
        b'{"agents": [{"id": "a1", "score": NaN}]}',
        b"\xef\xbb\xbf" + json.dumps(config()).encode(),
    ],
    ids=[
        "garbage",
        "not-utf8",
        "list-not-object",
        "agents-object",
        "agent-without-id",
        "numeric-id",
        "bare-strings",
        "namespaces-object",
        "filesystem-list",
        "namespace-string",
        "namespace-without-agents",
        "namespace-agent-null-id",
        "repeated-key",
        "nan",
        "byte-order-mark",
    ],
)
def test_unfilterable_config_fails_closed(body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_config(body, ONLY_A1, status=200)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(config()).encode(),
        b'{"detail": "x", "teams": []}',
        b'{"filesystem": null}',
        b'{"agents": [], "agents": []}',
    ],
    ids=["whole-config", "one-family", "filesystem", "unreadable-object"],
)
@pytest.mark.parametrize("status", [203, 206, 404, 500])
def test_a_non_200_config_holding_a_section_to_cut_fails_closed(body: bytes, status: int) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_config(body, ONLY_A1, status=status)


@pytest.mark.parametrize(
    "body", [b"", b'{"detail": "Not Found"}', b"<html>bad gateway</html>", b'{"detail": {"agents": []}}']
)
def test_a_non_200_config_without_a_section_to_cut_passes_as_it_came(body: bytes) -> None:
    assert filter_config(body, ONLY_A1, status=404) is body
