"""Paths whose meaning differs between servers: refused with 400 before any rule is read; paths that merely
look different are matched literally (and so fall outside the policy); the upstream receives exactly the
path that was authorized.

Every request goes over a raw socket, so the target reaches the proxy byte for byte as written here.
"""

from __future__ import annotations

import pytest

from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import RunningProxy
from tests.rigs.raw import exchange, request_bytes
from tests.rigs.tapped import TappedUpstream

pytestmark = pytest.mark.usefixtures("upstream")


def _auth(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


AMBIGUOUS = [
    "/agents/../sessions",
    "/agents/./../sessions",
    "/agents/%2e%2e/sessions",
    "/agents/%2E%2E/sessions",
    "/agents/.%2e/sessions",
    "/agents/%2e./sessions",
    "/agents/%2E%2E%2Fsessions",
    "/agents%2F..%2Fsessions",
    "/agents%2fx",
    "/agents/%252e%252e/sessions",
    "/agents/%252F",
    "//sessions",
    "/agents//x",
    "/./agents",
    "/agents/.",
    "/agents/..",
    "/agents\\..\\sessions",
    "/agents%5C..%5Csessions",
    "/agents%00",
    "/agents/x%00.json",
    "/agents/%0d%0aX-Injected:%20yes",
    "/agents/%c0%ae%c0%ae/sessions",
    "/agents/%e0%80%ae",
    "/agents/%ff",
    "/agents/%",
    "/agents/%zz",
    "/agents;x=1",
    "/agents;/../sessions",
    "/agents/x;jsessionid=1",
    "/sessions/abc;/..",
    "/agents#fragment",
    "/agents?x=1#/../sessions",
    "http://proxy.test/agents",
    "http://evil.test/sessions",
    "HTTP://proxy.test/agents",
    "//evil.test/sessions",
    "*",
    "agents",
]


@pytest.mark.parametrize("target", AMBIGUOUS)
async def test_ambiguous_path_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, target: str
) -> None:
    # With a token that would pass any rule: the refusal must come before rules and tokens are read.
    answers = await exchange(proxy.port, request_bytes(target, headers=_auth(token("proxy:admin"))))
    assert [a.status for a in answers] == [400]
    assert answers[0].json()["error"] == "bad_request"
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "raw_target",
    [
        b"/agents/a\x00b",
        b"/agents/\xc0\xae\xc0\xae/sessions",
        b"/agents/\xe2\x82\xac",
        b"/agents/a b",
        b"/agents\t",
    ],
    ids=["nul", "overlong-utf8", "raw-utf8", "space", "tab"],
)
async def test_raw_control_or_non_ascii_byte_in_path_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, raw_target: bytes
) -> None:
    head = b"GET " + raw_target + b" HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n"
    auth = f"Authorization: Bearer {token('proxy:admin')}\r\n\r\n".encode()
    answers = await exchange(proxy.port, head + auth)
    assert [a.status for a in answers] == [400]
    assert answers[0].json()["error"] == "bad_request"
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/AGENTS", 403),
        ("/Agents", 403),
        ("/agents.", 403),
        ("/agents..", 403),
        ("/agents.json", 403),
        ("/agents%20", 403),
        ("/agents%3Bx=1", 403),
        ("/%61gents", 200),  # decodes to /agents: the same route, and forwarded as sent
    ],
)
async def test_lookalike_path_is_judged_literally(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, target: str, status: int
) -> None:
    # A token good for GET /agents only: a lookalike is another route (unmapped: 403), never /agents.
    answers = await exchange(proxy.port, request_bytes(target, headers=_auth(token("agents:read"))))
    assert [a.status for a in answers] == [status]
    if status == 200:
        assert upstream.only().raw_path == target
    else:
        upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("target", ["/AGENTS", "/agents.", "/agents/"])
async def test_lookalike_path_without_token_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, target: str
) -> None:
    answers = await exchange(proxy.port, request_bytes(target))
    assert [a.status for a in answers] == [401]
    upstream.assert_nothing_forwarded()


async def test_trailing_slash_is_the_same_route_and_forwarded_as_sent(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    answers = await exchange(proxy.port, request_bytes("/agents/", headers=_auth(token("agents:read"))))
    assert [a.status for a in answers] == [200]
    assert upstream.only().raw_path == "/agents/"


async def test_encoded_slash_in_a_parameter_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    # agents:a:run for agent "a", aimed at agent "a/../b" through an encoded slash.
    target = "/agents/a%2F..%2Fb/runs"
    request = request_bytes(target, method="POST", headers=_auth(token("agents:run")))
    answers = await exchange(proxy.port, request)
    assert [a.status for a in answers] == [400]
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "target", ["/agents?/../public/x", "/agents?next=/../public/x", "/agents?x=%2F..%2Fpublic", "/agents?#"]
)
async def test_dot_segments_in_query_do_not_reach_a_public_route(
    proxy: RunningProxy, upstream: TappedUpstream, target: str
) -> None:
    answers = await exchange(proxy.port, request_bytes(target))
    assert answers[0].status in (400, 401)
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "query", ["?/../agents", "?next=/../../agents", "?a=%2F..%2Fagents&b=%00", "?%7e=%7E"]
)
async def test_query_is_forwarded_byte_for_byte_and_never_read_as_path(
    proxy: RunningProxy, upstream: TappedUpstream, query: str
) -> None:
    answers = await exchange(proxy.port, request_bytes("/public/x" + query))
    assert [a.status for a in answers] == [200]
    assert upstream.only().raw_path == "/public/x" + query


async def test_empty_query_is_forwarded_with_its_question_mark(
    proxy: RunningProxy, upstream: TappedUpstream
) -> None:
    # The request target goes out byte for byte, an empty query included.
    answers = await exchange(proxy.port, request_bytes("/public/x?"))
    assert [a.status for a in answers] == [200]
    assert upstream.only().raw_path == "/public/x?"


@pytest.mark.parametrize("target", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("user_agent", ["curl/8", "kube-probe/1.30", "ELB-HealthChecker/2.0"])
async def test_admin_paths_are_not_public_on_the_proxied_port(
    proxy: RunningProxy, upstream: TappedUpstream, target: str, user_agent: str
) -> None:
    # Health and metrics live on the admin port only; no path or User-Agent opens a way past the gate.
    answers = await exchange(proxy.port, request_bytes(target, headers=[("User-Agent", user_agent)]))
    assert [a.status for a in answers] == [401]
    upstream.assert_nothing_forwarded()
