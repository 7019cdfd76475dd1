"""`authproxy explain` and the decision port render a denial from the same Decision: the same status,
WWW-Authenticate and body bytes, whichever front end asks (tests/integration/test_explain_matches_proxy.py
proves the same for the proxied port)."""

from __future__ import annotations

import aiohttp
import pytest

from authproxy.cli.explain import explain
from tests.rigs.authz import FRONTENDS, AuthzFactory, ask
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream

CASES = [
    ("no token", "GET", "/private/x", None),
    ("invalid token", "GET", "/private/x", "not.a.jwt"),
    ("expired token", "GET", "/private/x", "expired"),
    ("insufficient scope", "GET", "/private/x", "proxy-use-only"),
    ("method judged as sent", "PATCH", "/private/x", "private-read-only"),
    ("ambiguous path", "GET", "/public/../private/x", None),
    ("encoded slash", "GET", "/public/a%2Fb", None),
    ("lower-case method", "get", "/private/x", None),
]


# An HTTP client upper-cases its own method, and Envoy's check method is the client's: a lower-case method
# reaches the decision port through nginx's and Traefik's headers only.
PAIRS = [(f, *c) for f in FRONTENDS for c in CASES if f != "envoy" or c[1].isupper()]


@pytest.mark.parametrize(
    ("frontend", "name", "method", "target", "kind"), PAIRS, ids=[f"{p[0]}-{p[1]}" for p in PAIRS]
)
async def test_decision_port_denial_is_byte_identical_to_explain(
    frontend: str,
    name: str,
    method: str,
    target: str,
    kind: str | None,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    authz = await start_authz(upstream.url)
    presented = {
        "proxy-use-only": lambda: token("proxy:use"),
        "private-read-only": lambda: token("private:read"),
        "expired": lambda: token("proxy:use", exp=1_000_000),
    }.get(kind or "", lambda: kind)()
    headers = {"Authorization": f"Bearer {presented}"} if presented else {}
    status, body, answer = await ask(client, authz.authz_url, frontend, method, target, headers)
    report, allowed = await explain(str(authz.config_path), method, target, token=presented)
    assert not allowed
    assert report["status"] == str(status)
    assert report["body"].encode() == body
    assert report.get("www-authenticate") == answer.get("WWW-Authenticate")
    assert presented is None or presented not in report["body"]
    assert upstream.requests == []
