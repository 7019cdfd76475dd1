"""Forged, stale, misdirected and malformed tokens: each is refused and nothing reaches the upstream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from authproxy.auth.verify import MAX_TOKEN_LENGTH
from authproxy.proxy.protocol import MAX_FIELD_SIZE
from tests.rigs.client import fetch
from tests.rigs.config import ATTACK_AUDIENCE, ATTACK_ISSUER
from tests.rigs.keys import (
    TokenFactory,
    b64url,
    hmac_token,
    jwks,
    new_rsa_key,
    public_jwk,
    public_pem,
    raw_token,
    rs256_raw,
)
from tests.rigs.proxy import RunningProxy
from tests.rigs.tapped import TappedUpstream

pytestmark = pytest.mark.usefixtures("upstream")


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "mallory",
        "aud": ATTACK_AUDIENCE,
        "iss": ATTACK_ISSUER,
        "scopes": ["agents:read"],
        "iat": now,
    }
    return {**base, "exp": now + 300, **extra}


async def _refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    token: str,
    *,
    status: int = 401,
    reason: str | None = None,
) -> dict[str, Any]:
    reply = await fetch(client, proxy, "/agents", token=token)
    body = reply.json()
    assert reply.status == status, body
    assert body["error"] == ("invalid_token" if status == 401 else "insufficient_scope")
    if reason is not None:
        assert body["detail"] == reason
    assert token not in reply.body.decode() and token not in reply.headers.get("WWW-Authenticate", "")
    upstream.assert_nothing_forwarded()
    return dict(body)


@pytest.fixture
def attacker_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


async def test_valid_token_is_forwarded_as_a_baseline(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    reply = await fetch(client, proxy, "/agents", token=token("agents:read"))
    assert reply.status == 200
    assert upstream.only().raw_path == "/agents"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_is_refused(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, alg: str
) -> None:
    forged = raw_token({"alg": alg, "typ": "JWT"}, _claims(scopes=["proxy:admin"]))
    await _refused(client, proxy, upstream, forged, reason="algorithm not allowed")


async def test_hs256_signed_with_rsa_public_key_is_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    # The classic confusion: the public PEM, which anyone has, used as an HMAC secret.
    forged = hmac_token({"alg": "HS256", "typ": "JWT"}, _claims(), public_pem(rsa_private_key))
    await _refused(client, proxy, upstream, forged, reason="algorithm not allowed")


@pytest.mark.parametrize(
    "kid",
    ["../../../../dev/null", "/etc/passwd", "' OR '1'='1", "1; DROP TABLE keys--", "..\\..\\keys", "\u0000"],
)
async def test_kid_injection_is_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    attacker_key: rsa.RSAPrivateKey,
    kid: str,
) -> None:
    header = json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode()
    forged = rs256_raw(header, json.dumps(_claims()).encode(), attacker_key)
    await _refused(client, proxy, upstream, forged, reason="signature verification failed")


async def test_hs256_with_kid_pointing_at_an_empty_file_is_refused(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream
) -> None:
    forged = hmac_token({"alg": "HS256", "kid": "../../../../dev/null"}, _claims(), b"")
    await _refused(client, proxy, upstream, forged, reason="algorithm not allowed")


class _AttackerKeyServer:
    """Serves the attacker's JWKS (and anything else) and counts every request: none may arrive."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.hits: list[str] = []
        self.url = ""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.hits.append(request.raw_path)
        return web.json_response(self.document)


@pytest.fixture
async def attacker_jwks(attacker_key: rsa.RSAPrivateKey) -> AsyncIterator[_AttackerKeyServer]:
    server = _AttackerKeyServer(jwks(public_jwk(attacker_key, "attacker", alg="RS256")))
    runner = web.ServerRunner(web.Server(server.handle, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    yield server
    await runner.cleanup()


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk"])
async def test_key_location_headers_are_ignored_and_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    attacker_key: rsa.RSAPrivateKey,
    attacker_jwks: _AttackerKeyServer,
    member: str,
) -> None:
    values = {
        "jku": f"{attacker_jwks.url}/jwks.json",
        "x5u": f"{attacker_jwks.url}/cert.pem",
        "jwk": public_jwk(attacker_key, "attacker", alg="RS256"),
    }
    header = json.dumps({"alg": "RS256", "kid": "attacker", member: values[member]}).encode()
    forged = rs256_raw(header, json.dumps(_claims(scopes=["proxy:admin"])).encode(), attacker_key)
    await _refused(client, proxy, upstream, forged, reason="signature verification failed")
    assert attacker_jwks.hits == [], "the proxy fetched a key location named by the token"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": -3600}, "token expired"),
        ({"nbf": 3600}, "token not yet valid"),
        ({"iat": 3600, "exp": 7200}, "token issued in the future"),
        ({"exp": None}, "exp claim is missing"),
        ({"exp": "9999999999"}, "exp claim is not a number"),
    ],
    ids=["expired", "nbf-in-the-future", "iat-in-the-future", "no-exp", "exp-as-string"],
)
async def test_token_outside_its_lifetime_is_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    token: TokenFactory,
    claims: dict[str, Any],
    reason: str,
) -> None:
    now = int(time.time())
    shifted: dict[str, Any] = {k: now + v if isinstance(v, int) else v for k, v in claims.items()}
    await _refused(client, proxy, upstream, token("agents:read", **shifted), reason=reason)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-else"}, "audience mismatch"),
        ({"aud": None}, "audience mismatch"),
        ({"aud": ["someone-else", "another"]}, "audience mismatch"),
        ({"aud": 42}, "aud claim has the wrong type"),
        ({"aud": [ATTACK_AUDIENCE, 42]}, "aud claim has the wrong type"),
        ({"iss": "https://evil.test"}, "issuer mismatch"),
        ({"iss": None}, "issuer mismatch"),
        ({"iss": ATTACK_ISSUER + "/"}, "issuer mismatch"),
    ],
    ids=[
        "wrong-aud",
        "no-aud",
        "aud-list-without-ours",
        "aud-number",
        "aud-list-with-number",
        "wrong-iss",
        "no-iss",
        "iss-trailing-slash",
    ],
)
async def test_wrong_or_missing_audience_or_issuer_is_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    token: TokenFactory,
    claims: dict[str, Any],
    reason: str,
) -> None:
    await _refused(client, proxy, upstream, token("agents:read", **claims), reason=reason)


async def test_empty_scopes_are_refused(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    body = await _refused(client, proxy, upstream, token(), status=403)
    assert body["missing_scopes"] == ["agents:read"]


async def test_empty_scope_string_is_refused(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    await _refused(client, proxy, upstream, token(scopes="  "), status=403)


@pytest.mark.parametrize(
    "scopes",
    [7, 1.5, True, None, {"agents:read": True}, [1], ["agents:read", 5], [["agents:read"]]],
    ids=["int", "float", "bool", "null", "object", "list-of-int", "mixed-list", "nested-list"],
)
async def test_scopes_of_wrong_type_are_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    rsa_private_key: rsa.RSAPrivateKey,
    scopes: object,
) -> None:
    # Signed by hand so that `"scopes": null` stays in the payload.
    signed = rs256_raw(b'{"alg":"RS256"}', json.dumps(_claims(scopes=scopes)).encode(), rsa_private_key)
    await _refused(client, proxy, upstream, signed, reason="scopes claim has the wrong type")


async def test_token_just_over_the_verifier_limit_is_refused(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    # Within the header limits, so the verifier itself sees it and refuses before any decoding.
    oversized = token("agents:read", padding="x" * 12_000)
    assert MAX_TOKEN_LENGTH < len(oversized) < MAX_FIELD_SIZE - len("Authorization: Bearer ")
    await _refused(client, proxy, upstream, oversized, reason="token too large")


@pytest.mark.parametrize(
    "garbage",
    [
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "e30.e30.e30.e30.e30",
        "@@@.e30.sig",
        "eyJhbGciOiJSUzI1NiJ9.!!!.sig",
        b64url(b"not json") + ".e30.sig",
        b64url(b"[1,2]") + ".e30.sig",
        b64url(b'{"alg":"RS256"}') + "." + b64url(b"not json") + ".sig",
        b64url(b'{"alg":"RS256"}') + ".e30.",
        b64url(b'{"alg":"RS256"}') + "=.e30.sig",
        "é.e30.sig",
    ],
)
async def test_malformed_token_is_refused(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, garbage: str
) -> None:
    reply = await fetch(client, proxy, "/agents", headers={"Authorization": f"Bearer {garbage}"})
    assert reply.status == 401
    assert reply.json()["error"] == "invalid_token"
    upstream.assert_nothing_forwarded()


async def test_duplicate_claims_are_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    # Signed with the real key: only the ambiguity (which "scopes" counts?) is wrong.
    now = int(time.time())
    payload = (
        f'{{"sub":"u","aud":"{ATTACK_AUDIENCE}","iss":"{ATTACK_ISSUER}","iat":{now},"exp":{now + 300},'
        '"scopes":[],"scopes":["proxy:admin"]}'
    ).encode()
    forged = rs256_raw(b'{"alg":"RS256","typ":"JWT"}', payload, rsa_private_key)
    await _refused(client, proxy, upstream, forged, reason="malformed token")


async def test_duplicate_header_members_are_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    # Before the fix the last "alg" silently won; a parser that keeps the first would read "none".
    forged = rs256_raw(b'{"alg":"none","alg":"RS256"}', json.dumps(_claims()).encode(), rsa_private_key)
    await _refused(client, proxy, upstream, forged, reason="malformed token")


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:example:unknown"], []])
async def test_unknown_critical_header_is_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    rsa_private_key: rsa.RSAPrivateKey,
    crit: list[str],
) -> None:
    header = json.dumps({"alg": "RS256", "crit": crit, "b64": True, "urn:example:unknown": 1}).encode()
    forged = rs256_raw(header, json.dumps(_claims()).encode(), rsa_private_key)
    await _refused(client, proxy, upstream, forged, reason="unsupported critical header")


async def test_signature_from_another_key_is_refused(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    upstream: TappedUpstream,
    attacker_key: rsa.RSAPrivateKey,
) -> None:
    forged = rs256_raw(b'{"alg":"RS256"}', json.dumps(_claims()).encode(), attacker_key)
    await _refused(client, proxy, upstream, forged, reason="signature verification failed")


async def test_token_in_the_query_string_is_ignored(
    client: aiohttp.ClientSession, proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    reply = await fetch(client, proxy, f"/agents?access_token={token('agents:read')}")
    assert reply.status == 401
    assert reply.json()["error"] == "missing_token"
    upstream.assert_nothing_forwarded()
