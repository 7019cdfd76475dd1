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
    presented = token("proxy:use") if token_kind == "proxy-use-only" else token_kind
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
