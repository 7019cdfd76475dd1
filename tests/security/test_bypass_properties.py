"""Properties over random paths and tokens, through real sockets: the proxy never forwards a request the
policy engine (gate.authorize) denies, and what the upstream receives is the method and target that were
authorized, byte for byte."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from authproxy.answers.table import render_decision
from authproxy.gate import authorize
from tests.rigs.config import ATTACK_AUDIENCE, ATTACK_ISSUER
from tests.rigs.keys import hmac_token, mint_token, public_pem, raw_token
from tests.rigs.proxy import RunningProxy
from tests.rigs.raw import exchange
from tests.rigs.tapped import TappedUpstream

pytestmark = pytest.mark.usefixtures("upstream")

PIECES = [
    "agents", "sessions", "reports", "public", "health", "ws", "runs", "AGENTS", "Agents", "a1", "x",
    ".", "..", "...", "%2e", "%2E%2e", ".%2e", "%2F", "%2f", "%5C", "%00", "%0a", "%25", "%252F", "%252e",
    ";", ";x=1", "a;b", "~", "%7E", "%41gents", "%61gents", "a.b", "agents.", "", "%C0%AE", "%E2%82%AC",
    "%ff", "%", "%z1", "*", "@", ":", "a:b", "!", "$", "'", "(", ")", "+", ",", "=", "&",
]  # fmt: skip
QUERIES = ["", "?a=1", "?/../agents", "?x=%2F..%2Fsessions", "?%00", "?a=b;c", "?next=//evil.test", "??"]
METHODS = ["GET", "GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS"]
SCOPES = [
    "agents:read",
    "agents:run",
    "agents:a1:run",
    "agents:*:read",
    "sessions:read",
    "sessions:delete",
    "reports:read",
    "ws:use",
    "proxy:admin",
    "proxy:admin ",
    "agents:read reports:read",
    "AGENTS:READ",
    "agents",
    ":read",
]
ROUTES = [
    ("GET", "/agents"),
    ("GET", "/agents/a1"),
    ("POST", "/agents/a1/runs"),
    ("POST", "/agents/b2/runs"),
    ("GET", "/sessions"),
    ("DELETE", "/sessions/s1"),
    ("GET", "/reports/2024/q1"),
    ("HEAD", "/agents"),
    ("GET", "/unmapped"),
    ("DELETE", "/agents/a1"),
    ("GET", "/public/x"),
]


@st.composite
def targets(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(PIECES), min_size=0, max_size=5))
    path = "/" + "/".join(segments)
    if draw(st.booleans()) and segments:
        path += "/"
    if draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from(["*", "agents", "//sessions", "http://proxy.test/agents"]))
    return path + draw(st.sampled_from(QUERIES))


@st.composite
def tokens(draw: st.DrawFn, key: rsa.RSAPrivateKey) -> str | None:
    kind = draw(
        st.sampled_from(["none", "valid", "valid", "valid", "expired", "wrong-aud", "alg-none", "hs256"])
    )
    if kind == "none":
        return None
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": draw(st.sampled_from(["alice", "bob"])),
        "aud": ATTACK_AUDIENCE if kind != "wrong-aud" else "elsewhere",
        "iss": ATTACK_ISSUER,
        "scopes": draw(st.lists(st.sampled_from(SCOPES), max_size=3, unique=True)),
    }
    if kind == "alg-none":
        return raw_token({"alg": "none"}, {**claims, "exp": now + 300})
    if kind == "hs256":
        return hmac_token({"alg": "HS256"}, {**claims, "exp": now + 300}, public_pem(key))
    return mint_token(claims, key=key, alg="RS256", now=now - 3600 if kind == "expired" else now)


def _request(method: str, target: str, token: str | None) -> tuple[bytes, CIMultiDict[str]]:
    headers = CIMultiDict({"Host": "proxy.test", "Connection": "close"})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode(), headers


async def _check(
    proxy: RunningProxy, upstream: TappedUpstream, method: str, target: str, token: str | None
) -> None:
    upstream.reset()
    request, headers = _request(method, target, token)
    decision = await authorize(proxy.service.holder.current, method, target, headers)
    answers = await exchange(proxy.port, request)
    assert len(answers) == 1
    status = answers[0].status
    if not decision.allowed:
        upstream.assert_nothing_forwarded()
        # Either the gate's own answer, or the HTTP parser refused the bytes before the gate saw them.
        assert status in (render_decision(decision).status, 400), (method, target, decision)
        return
    # The gate's allow is final: nothing after it (identity headers included) may refuse the request.
    assert upstream.requests, (method, target, status, decision)
    received = upstream.only()
    assert (received.method, received.raw_path) == (method, _forwarded_form(target))


def _forwarded_form(target: str) -> str:
    # Byte for byte, except that an empty query loses its "?" (see test_path_attacks).
    path, sep, query = target.partition("?")
    return path if sep and not query else target


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=st.data())
async def test_random_request_is_forwarded_only_when_authorized_and_unchanged(
    proxy: RunningProxy, upstream: TappedUpstream, rsa_private_key: rsa.RSAPrivateKey, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(METHODS), label="method")
    target = data.draw(targets(), label="target")
    token = data.draw(tokens(rsa_private_key), label="token")
    await _check(proxy, upstream, method, target, token)


@SETTINGS
@given(data=st.data())
async def test_random_scopes_on_known_routes_are_forwarded_only_when_authorized(
    proxy: RunningProxy, upstream: TappedUpstream, rsa_private_key: rsa.RSAPrivateKey, data: st.DataObject
) -> None:
    # Fewer malformed paths, more near-misses of real rules: the scope evaluation is what is exercised.
    method, path = data.draw(st.sampled_from(ROUTES), label="route")
    token = data.draw(tokens(rsa_private_key), label="token")
    await _check(proxy, upstream, method, path, token)
