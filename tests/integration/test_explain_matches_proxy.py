"""`authproxy explain` and the proxy render a denial from the same Decision: same status, header and bytes."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from authproxy.cli.explain import explain
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import RunningProxy
from tests.rigs.upstream import RecordingUpstream

CASES = [
    ("no token", "GET", "/private/x", None),
    ("invalid token", "GET", "/private/x", "not.a.jwt"),
    ("insufficient scope", "GET", "/private/x", "proxy-use-only"),
    ("ambiguous path", "GET", "/public/../private/x", None),
    # The gate refuses an identity the headers cannot carry: explain and the proxy both answer 401.
    ("control character in a claim", "GET", "/anything", "control-char-sub"),
    ("whitespace in a scope", "GET", "/anything", "whitespace-scope"),
]


@pytest.mark.parametrize(("name", "method", "target", "token_kind"), CASES, ids=[c[0] for c in CASES])
async def test_denial_body_is_byte_identical_to_explain(
    name: str,
    method: str,
    target: str,
    token_kind: str | None,
    proxy: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    presented = {
        "proxy-use-only": token("proxy:use"),
        "control-char-sub": token("proxy:use", sub="alice\r\nX-Auth-Scopes: proxy:admin"),
        "whitespace-scope": token("proxy:use", "x proxy:admin"),
    }.get(token_kind or "", token_kind)
    headers = {"Authorization": f"Bearer {presented}"} if presented else {}
    # encoded=True: the target goes out as written, dot-segments included
    async with client.request(method, URL(proxy.url + target, encoded=True), headers=headers) as resp:
        status, body = resp.status, await resp.read()
        challenge = resp.headers.get("WWW-Authenticate")
    report, allowed = await explain(str(proxy.config_path), method, target, token=presented)
    assert not allowed
    assert report["status"] == str(status)
    assert report["body"].encode() == body
    assert report.get("www-authenticate") == challenge
    assert presented is None or presented not in report["body"]
    assert upstream.requests == []
