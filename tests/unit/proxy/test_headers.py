"""HeaderPlan per request: the drop-set compiled at load, Connection-named headers, the headers we set."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.answers.table import SERVER
from authproxy.config.headers import DEFAULT_IDENTITY_HEADERS, HeaderPlan
from authproxy.config.model import ForwardConfig, JwtConfig, SecretKey
from authproxy.policy.decision import Decision
from authproxy.proxy.headers import forwarded_headers, identity_headers, response_headers

IDENTITY = (("user_id", "X-Auth-User-Id"), ("session_id", "X-Auth-Session-Id"), ("scopes", "X-Auth-Scopes"))
JWT = JwtConfig(algorithms=("HS256",), keys=(SecretKey(b"s" * 32, 1, "secret"),))
ALLOWED = Decision(
    allowed=True, error=None, reason="ok", subject="alice", session_id="s-1", scopes=("a:read", "b:write")
)


def plan(
    strip: bool = False, jwt: JwtConfig = JWT, identity: tuple[tuple[str, str], ...] = IDENTITY
) -> HeaderPlan:
    return HeaderPlan.build(ForwardConfig(identity_headers=identity, strip_authorization=strip), jwt)


def upstream(
    pairs: list[tuple[str, str]],
    decision: Decision = ALLOWED,
    *,
    websocket: bool = False,
    strip: bool = False,
    identity: tuple[tuple[str, str], ...] = IDENTITY,
) -> list[tuple[str, str]]:
    headers = CIMultiDictProxy(CIMultiDict(pairs))
    compiled = plan(strip, identity=identity)
    return forwarded_headers(compiled, headers, decision, peer="10.0.0.7", proto="http", websocket=websocket)


def names(pairs: list[tuple[str, str]]) -> list[str]:
    return [k.lower() for k, _ in pairs]


def test_end_to_end_headers_pass_in_order() -> None:
    out = upstream([("Accept", "a"), ("X-Custom", "1"), ("X-Custom", "2"), ("Authorization", "Bearer t")])
    assert out[:4] == [("Accept", "a"), ("X-Custom", "1"), ("X-Custom", "2"), ("Authorization", "Bearer t")]


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Connection",
        "Host",
        "Expect",
    ],
)
def test_hop_by_hop_header_is_dropped(name: str) -> None:
    assert name.lower() not in names(upstream([(name, "x")]))


@pytest.mark.parametrize(
    "spoof",
    [
        "X-Auth-User-Id",
        "x-auth-user-id",
        "X-AUTH-USER-ID",
        "X_Auth_User_Id",
        "x_auth-user_id",
        "X-Auth-Session-Id",
        "X_Auth_Scopes",
    ],
)
def test_identity_header_spoofing_is_refused(spoof: str) -> None:
    public = Decision(allowed=True, error=None, reason="public")
    out = upstream([(spoof, "mallory"), (spoof, "mallory2")], public)
    assert all("mallory" not in v for _, v in out)
    assert not any(k.lower().replace("_", "-").startswith("x-auth-") for k, _ in out)


def test_identity_headers_come_from_the_decision_only() -> None:
    out = upstream([("X-Auth-User-Id", "mallory"), ("x_auth_scopes", "admin")])
    got = dict(out)
    assert got["X-Auth-User-Id"] == "alice"
    assert got["X-Auth-Session-Id"] == "s-1"
    assert got["X-Auth-Scopes"] == "a:read b:write"
    assert names(out).count("x-auth-user-id") == 1


def test_identity_header_absent_when_the_claim_is_absent() -> None:
    out = upstream([], Decision(allowed=True, error=None, reason="ok", subject="bob"))
    assert dict(out)["X-Auth-User-Id"] == "bob"
    assert "x-auth-session-id" not in names(out)
    assert "x-auth-scopes" not in names(out)


def test_identity_headers_are_on_by_default() -> None:
    assert ForwardConfig().identity_headers == IDENTITY == DEFAULT_IDENTITY_HEADERS


@pytest.mark.parametrize("spoof", ["X-Auth-User-Id", "x_auth_user_id", "X-AUTH-SCOPES", "x-auth_session-id"])
def test_default_names_are_stripped_when_setting_them_is_off(spoof: str) -> None:
    out = upstream([(spoof, "admin"), ("X-Other", "kept")], identity=())
    assert out[0] == ("X-Other", "kept")
    assert all(v != "admin" for _, v in out)


def test_configured_names_are_stripped_along_with_the_defaults() -> None:
    out = upstream(
        [("X_Remote_User", "admin"), ("X-Auth-User-Id", "admin")], identity=(("user_id", "X-Remote-User"),)
    )
    assert [(k, v) for k, v in out if v in ("admin", "alice")] == [("X-Remote-User", "alice")]


def test_identity_headers_are_the_ones_forwarded_in_configured_order() -> None:
    decision = Decision(allowed=True, error=None, reason="ok", subject="alice", scopes=("a:read",))
    expected = [("X-Auth-User-Id", "alice"), ("X-Auth-Scopes", "a:read")]  # no session: left unset
    assert identity_headers(plan(), decision) == expected
    assert upstream([("Accept", "a")], decision)[-2:] == expected


@pytest.mark.parametrize(
    "name", ["X-Forwarded-For", "x_forwarded_for", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"]
)
def test_client_forwarding_headers_are_replaced(name: str) -> None:
    out = upstream([(name, "1.2.3.4"), ("Host", "public.example")])
    assert "1.2.3.4" not in [v for _, v in out]
    got = dict(out)
    assert got["X-Forwarded-For"] == "10.0.0.7"
    assert got["X-Forwarded-Proto"] == "http"
    assert got["X-Forwarded-Host"] == "public.example"
    assert "forwarded" not in names(out)


@pytest.mark.parametrize(
    "name", ["X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method", "x_http_method_override"]
)
def test_method_override_is_refused(name: str) -> None:
    assert upstream([(name, "DELETE")]) == upstream([])


@pytest.mark.parametrize("connection", ["X-Secret", "keep-alive, X-Secret", " x_secret ,close"])
def test_headers_named_in_connection_are_dropped(connection: str) -> None:
    out = upstream([("Connection", connection), ("X-Secret", "v"), ("X-Other", "kept")])
    assert "x-secret" not in names(out)
    assert ("X-Other", "kept") in out


def test_connection_can_not_drop_what_we_set() -> None:
    out = upstream([("Connection", "X-Auth-User-Id, X-Forwarded-For")])
    got = dict(out)
    assert got["X-Auth-User-Id"] == "alice"
    assert got["X-Forwarded-For"] == "10.0.0.7"


def test_authorization_kept_by_default_and_stripped_when_configured() -> None:
    assert ("Authorization", "Bearer t") in upstream([("Authorization", "Bearer t")])
    assert "authorization" not in names(upstream([("Authorization", "Bearer t")], strip=True))


def test_strip_authorization_follows_the_configured_token_header() -> None:
    jwt = JwtConfig(algorithms=("HS256",), keys=JWT.keys, header="X-Token")
    headers = CIMultiDictProxy(CIMultiDict([("X-Token", "t"), ("Authorization", "Basic x")]))
    out = forwarded_headers(plan(True, jwt), headers, ALLOWED, peer=None, proto="https")
    assert "x-token" not in names(out)
    assert ("Authorization", "Basic x") in out
    assert "x-forwarded-for" not in names(out)
    assert dict(out)["X-Forwarded-Proto"] == "https"


def test_strip_authorization_removes_the_token_cookie_in_every_cookie_header() -> None:
    jwt = JwtConfig(algorithms=("HS256",), keys=JWT.keys, sources=("header", "cookie"), cookie="tok")
    headers = CIMultiDictProxy(
        CIMultiDict([("Cookie", "a=1; tok=t;b=2"), ("Cookie", " tok = t "), ("Cookie", "tokx=3")])
    )
    out = forwarded_headers(plan(True, jwt), headers, ALLOWED, peer=None, proto="http")
    assert [v for k, v in out if k == "Cookie"] == ["a=1; b=2", "tokx=3"]
    kept = forwarded_headers(plan(False, jwt), headers, ALLOWED, peer=None, proto="http")
    assert [v for k, v in kept if k == "Cookie"] == ["a=1; tok=t;b=2", " tok = t ", "tokx=3"]


def test_websocket_handshake_headers_are_left_to_the_client_session() -> None:
    pairs = [
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "k"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Origin", "http://app"),
    ]
    out = upstream(pairs, websocket=True)
    assert not any(n.startswith("sec-websocket-") for n in names(out))
    assert ("Origin", "http://app") in out
    assert "sec-websocket-key" in names(upstream(pairs))  # plain HTTP keeps them: they mean nothing there


def test_response_headers_drop_hop_by_hop_and_connection_named() -> None:
    headers = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Connection", "X-Hop"),
                ("X-Hop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Content-Length", "10"),
            ]
        )
    )
    out = response_headers(headers)
    assert list(out.items()) == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Length", "10"),
        ("Server", SERVER),  # no upstream Server: ours, never aiohttp's version banner
    ]


def test_response_headers_keep_the_upstreams_server() -> None:
    out = response_headers(CIMultiDictProxy(CIMultiDict([("Server", "uvicorn")])))
    assert out.getall("Server") == ["uvicorn"]
