"""Methods and headers a client controls: none of them may change what was decided or who the upstream
thinks the caller is. Raw sockets throughout, so names, case, repeats and underscores arrive as written."""

from __future__ import annotations

import pytest

from tests.rigs.config import IDENTITY_HEADERS
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import AttackProxyFactory, RunningProxy
from tests.rigs.raw import Answer, exchange, request_bytes
from tests.rigs.tapped import TappedUpstream

pytestmark = pytest.mark.usefixtures("upstream")


def _auth(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


async def _one(proxy: RunningProxy, request: bytes) -> Answer:
    answers = await exchange(proxy.port, request)
    assert len(answers) == 1, answers
    return answers[0]


# --- methods --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "Get", "gET", "delete", "post"])
async def test_lowercase_method_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, method: str
) -> None:
    # Even with the admin scope: an upstream that upper-cases methods must never see one we did not judge.
    answer = await _one(proxy, request_bytes("/agents", method=method, headers=[_auth(token("proxy:admin"))]))
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("method", ["FOO", "G3T", "GET_", "BREW"])
async def test_unknown_method_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, method: str
) -> None:
    answer = await _one(proxy, request_bytes("/agents", method=method, headers=[_auth(token("agents:read"))]))
    assert answer.status == 400
    assert answer.json() == {"detail": "malformed or unsupported request method", "error": "bad_request"}
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("method", ["PURGE", "PROPFIND", "TRACE", "PUT", "PATCH", "OPTIONS"])
async def test_method_no_rule_names_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, method: str
) -> None:
    # Known to the parser, named by no rule for /agents: unmapped, so 403 for a token scoped to GET /agents.
    answer = await _one(proxy, request_bytes("/agents", method=method, headers=[_auth(token("agents:read"))]))
    assert answer.status == 403
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("target", ["/public/x", "proxy.test:443", "127.0.0.1:80"])
async def test_connect_is_refused(proxy: RunningProxy, upstream: TappedUpstream, target: str) -> None:
    # /public/** admits every method; CONNECT must still never open a tunnel to the upstream.
    answer = await _one(proxy, request_bytes(target, method="CONNECT"))
    assert answer.status == 400
    upstream.assert_nothing_forwarded()


OVERRIDES = [
    "X-HTTP-Method-Override",
    "X-Method-Override",
    "X-HTTP-Method",
    "x-http-method-override",
    "X_HTTP_Method_Override",
    "X_Method_Override",
]


@pytest.mark.parametrize("name", OVERRIDES)
async def test_method_override_header_cannot_change_the_method(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, name: str
) -> None:
    # Allowed to GET /sessions, not to DELETE anything: the override must not reach the upstream.
    headers = [_auth(token("sessions:read")), (name, "DELETE")]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 200
    received = upstream.only()
    assert received.method == "GET"
    names = {k.lower().replace("_", "-") for k, _ in received.headers}
    assert not names & {"x-http-method-override", "x-method-override", "x-http-method"}


async def test_method_override_on_a_denied_request_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    headers = [_auth(token("agents:read")), ("X-HTTP-Method-Override", "GET")]
    answer = await _one(proxy, request_bytes("/sessions/s1", method="DELETE", headers=headers))
    assert answer.status == 403
    upstream.assert_nothing_forwarded()


# --- identity headers -----------------------------------------------------------------------------------

SPOOFS = [
    [("X-Auth-User-Id", "admin")],
    [("x-auth-user-id", "admin")],
    [("X-AUTH-USER-ID", "admin")],
    [("X_Auth_User_Id", "admin")],
    [("x_auth_user_id", "admin")],
    [("X-Auth-User-Id", "admin"), ("X-Auth-User-Id", "root")],
    [("X-Auth-User-Id", "admin"), ("x_auth_user_id", "root"), ("X-AUTH_USER-ID", "boss")],
    [("X-Auth-Scopes", "proxy:admin"), ("X_Auth_Scopes", "proxy:admin")],
    [("X-Auth-Session-Id", "someone-elses")],
]


@pytest.mark.parametrize("spoof", SPOOFS)
async def test_spoofed_identity_headers_are_replaced(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, spoof: list[tuple[str, str]]
) -> None:
    answer = await _one(
        proxy, request_bytes("/agents", headers=[_auth(token("agents:read", sub="alice")), *spoof])
    )
    assert answer.status == 200
    received = upstream.only()
    identity = [(k, v) for k, v in received.headers if k.lower().replace("_", "-").startswith("x-auth-")]
    assert identity == [("X-Auth-User-Id", "alice"), ("X-Auth-Scopes", "agents:read")]


@pytest.mark.parametrize("spoof", SPOOFS)
async def test_spoofed_identity_headers_on_a_public_route_are_removed(
    proxy: RunningProxy, upstream: TappedUpstream, spoof: list[tuple[str, str]]
) -> None:
    answer = await _one(proxy, request_bytes("/public/x", headers=spoof))
    assert answer.status == 200
    names = {k.lower().replace("_", "-") for k, _ in upstream.only().headers}
    assert not names & {h.lower() for h in IDENTITY_HEADERS}


@pytest.mark.parametrize(
    "connection",
    ["X-Auth-User-Id", "x-auth-user-id, X-Auth-Scopes", "X_Auth_User_Id", "keep-alive, X-Auth-Scopes"],
)
async def test_connection_header_cannot_strip_an_identity_header(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, connection: str
) -> None:
    # Hop-by-hop removal of what `Connection` names happens before our identity headers are set.
    headers = [_auth(token("agents:read", sub="alice")), ("Connection", connection)]
    request = request_bytes("/agents", headers=headers)
    answer = await _one(proxy, request)
    assert answer.status == 200
    received = upstream.only()
    assert received.header("X-Auth-User-Id") == ["alice"]
    assert received.header("X-Auth-Scopes") == ["agents:read"]


async def test_spoofed_forwarding_headers_are_replaced(proxy: RunningProxy, upstream: TappedUpstream) -> None:
    spoof = [
        ("X-Forwarded-For", "10.0.0.1"),
        ("X_Forwarded_For", "10.0.0.2"),
        ("Forwarded", "for=10.0.0.3"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "admin.internal"),
        ("X-Real-IP", "10.0.0.4"),
        ("True-Client-IP", "10.0.0.5"),
        ("X-Client-IP", "10.0.0.6"),
        ("X-Cluster-Client-IP", "10.0.0.7"),
    ]
    answer = await _one(proxy, request_bytes("/public/x", headers=spoof))
    assert answer.status == 200
    received = upstream.only()
    assert received.header("X-Forwarded-For") == ["127.0.0.1"]
    assert received.header("X-Forwarded-Proto") == ["http"]
    assert received.header("X-Forwarded-Host") == ["proxy.test"]
    assert received.header("Forwarded") == []
    assert received.header("X_Forwarded_For") == []
    for claimed in ("X-Real-IP", "True-Client-IP", "X-Client-IP", "X-Cluster-Client-IP"):
        assert received.header(claimed) == []


# --- where the token comes from -------------------------------------------------------------------------


async def test_duplicate_authorization_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    headers = [_auth(token("agents:read")), _auth(token("proxy:admin"))]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 401
    assert answer.json()["detail"] == "multiple authorization headers"
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "Bearer  {t}", "Token {t}", "{t}"]
)
async def test_malformed_authorization_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, value: str
) -> None:
    answer = await _one(
        proxy, request_bytes("/agents", headers=[("Authorization", value.format(t=token("agents:read")))])
    )
    assert answer.status == 401
    upstream.assert_nothing_forwarded()


async def test_header_beats_cookie_when_both_are_sent(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    # sources: [header, cookie]: the header is judged; an admin cookie alongside changes nothing.
    headers = [_auth(token("agents:read")), ("Cookie", f"access_token={token('proxy:admin')}")]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 403
    upstream.assert_nothing_forwarded()


async def test_invalid_header_token_does_not_fall_back_to_the_cookie(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    headers = [("Authorization", "Bearer garbage"), ("Cookie", f"access_token={token('sessions:read')}")]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 401
    upstream.assert_nothing_forwarded()


async def test_cookie_beats_header_when_configured_first(
    start_proxy: AttackProxyFactory, upstream: TappedUpstream, token: TokenFactory
) -> None:
    proxy = await start_proxy(sources="cookie, header")
    headers = [_auth(token("proxy:admin")), ("Cookie", f"access_token={token('agents:read')}")]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 403
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "cookies",
    [
        ["access_token={low}; access_token={admin}"],
        ["access_token={low}", "access_token={admin}"],
        ["a=1; access_token={low};access_token={admin}"],
    ],
)
async def test_duplicate_token_cookie_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, cookies: list[str]
) -> None:
    values = {"low": token("agents:read"), "admin": token("proxy:admin")}
    headers = [("Cookie", c.format(**values)) for c in cookies]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 401
    upstream.assert_nothing_forwarded()


async def test_lookalike_cookie_name_is_not_a_token(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    admin = token("proxy:admin")
    headers = [("Cookie", f"Access_Token={admin}; access_token_x={admin}; xaccess_token={admin}")]
    answer = await _one(proxy, request_bytes("/sessions", headers=headers))
    assert answer.status == 401
    assert answer.json()["error"] == "missing_token"
    upstream.assert_nothing_forwarded()


# --- Host -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["admin.internal", "127.0.0.1:9901", "evil.test/sessions", "localhost"])
async def test_host_header_cannot_choose_the_upstream_or_the_route(
    proxy: RunningProxy, upstream: TappedUpstream, host: str
) -> None:
    request = f"GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    answer = await _one(proxy, request)
    assert answer.status == 200
    received = upstream.only()
    assert received.raw_path == "/public/x"
    assert received.header("Host") == [upstream.url.removeprefix("http://")]
    assert received.header("X-Forwarded-Host") == [host]


async def test_duplicate_host_is_refused(proxy: RunningProxy, upstream: TappedUpstream) -> None:
    request = (
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\r\nHost: admin.internal\r\nConnection: close\r\n\r\n"
    )
    answer = await _one(proxy, request)
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    upstream.assert_nothing_forwarded()


async def test_missing_host_on_http11_is_refused(proxy: RunningProxy, upstream: TappedUpstream) -> None:
    answer = await _one(proxy, b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.status == 400
    upstream.assert_nothing_forwarded()


async def test_absolute_form_with_another_host_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    request = request_bytes("http://admin.internal/sessions", headers=[_auth(token("proxy:admin"))])
    answer = await _one(proxy, request)
    assert answer.status == 400
    upstream.assert_nothing_forwarded()


# --- what the identity headers carry -----------------------------------------------------------------


@pytest.mark.parametrize(
    "sub", ["a\x0bb", "a\x01b", "a\x7fb", "a\x1bb", "a\rb", "a\nX-Auth-Scopes: proxy:admin"]
)
async def test_claim_with_control_character_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, sub: str
) -> None:
    answer = await _one(proxy, request_bytes("/agents", headers=[_auth(token("agents:read", sub=sub))]))
    assert answer.status == 401
    assert answer.json() == {
        "detail": "the user_id claim holds a control character",
        "error": "invalid_token",
    }
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "scope", ["zz proxy:admin", "proxy:admin ", "\tproxy:admin", "x\u2028proxy:admin", ""]
)
async def test_scope_with_whitespace_cannot_widen_the_forwarded_scopes(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, scope: str
) -> None:
    # The proxy judged one odd scope; the space-separated X-Auth-Scopes would hand the upstream two.
    answer = await _one(proxy, request_bytes("/agents", headers=[_auth(token("agents:read", scope))]))
    assert answer.status == 401
    assert answer.json()["detail"] == "a scope holds whitespace and cannot be forwarded"
    upstream.assert_nothing_forwarded()
