"""The decision port asked directly, as each front end asks it: the same gate as the proxied port, answered
without forwarding; denials byte-identical to the proxied port's; the original-request headers believed on
the decision port's own endpoints only."""

from __future__ import annotations

import dataclasses
import json

import aiohttp
import pytest
import structlog

from tests.rigs.authz import (
    ENGINE_DENIALS,
    FRONTENDS,
    IDENTITY,
    ORIGINAL_SPOOF,
    AuthzFactory,
    RunningAuthz,
    ask,
    presented,
    proxied,
)
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream


@pytest.fixture
async def authz(start_authz: AuthzFactory, upstream: RecordingUpstream) -> RunningAuthz:
    return await start_authz(upstream.url)


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_allowed_check_answers_200_with_the_identity_headers_and_forwards_nothing(
    frontend: str,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    bearer = token("private:read", "proxy:use", sub="alice", session_id="s-1")
    status, body, headers = await ask(
        client, authz.authz_url, frontend, "GET", "/private/doc?q=1", {"Authorization": f"Bearer {bearer}"}
    )
    assert (status, body) == (200, b"")
    assert headers.getall("Server") == ["authproxy"]  # ours, never aiohttp's version banner
    assert headers["X-Auth-User-Id"] == "alice"
    assert headers["X-Auth-Session-Id"] == "s-1"
    assert headers["X-Auth-Scopes"] == "private:read proxy:use"
    assert "x-envoy-auth-headers-to-remove" not in headers  # every identity header is set
    assert upstream.requests == []
    # the proxied port sets the very same values upstream
    assert (
        await proxied(client, authz.url, "GET", "/private/doc?q=1", {"Authorization": f"Bearer {bearer}"})
    )[0] == 200
    seen = upstream.last()
    assert [seen.header(name) for name in IDENTITY] == [[headers[name]] for name in IDENTITY]


async def test_envoy_is_told_to_remove_identity_headers_the_decision_does_not_set(
    authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    bearer = token("proxy:use", sub="bob")  # no session_id claim
    status, _, headers = await ask(
        client, authz.authz_url, "envoy", "POST", "/items", {"Authorization": f"Bearer {bearer}"}
    )
    assert status == 200
    assert headers["x-envoy-auth-headers-to-remove"] == "x-auth-session-id"
    status, _, headers = await ask(client, authz.authz_url, "envoy", "GET", "/public/page")
    assert status == 200
    assert headers["x-envoy-auth-headers-to-remove"] == "x-auth-user-id,x-auth-session-id,x-auth-scopes"
    assert not any(name in headers for name in IDENTITY)
    assert upstream.requests == []


async def test_envoy_is_told_to_remove_the_token_when_the_proxy_strips_it(
    start_authz: AuthzFactory, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    authz = await start_authz(upstream.url, strip_authorization="true")
    bearer = token("proxy:use", sub="bob", session_id="s")
    status, _, headers = await ask(
        client, authz.authz_url, "envoy", "GET", "/items", {"Authorization": f"Bearer {bearer}"}
    )
    assert status == 200
    assert headers["x-envoy-auth-headers-to-remove"] == "authorization"


# What every front end refuses, plus a target the engines cannot be sent as written.
DENIALS = [*ENGINE_DENIALS, ("double encoding", "GET", "/public/%252e%252e/private", None)]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("name", "method", "target", "kind"), DENIALS, ids=[d[0] for d in DENIALS])
async def test_denial_is_the_proxied_ports_answer_byte_for_byte(
    frontend: str,
    name: str,
    method: str,
    target: str,
    kind: str | None,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    headers = presented(kind, token)
    status, body, answer = await ask(client, authz.authz_url, frontend, method, target, headers)
    want_status, want_body, want = await proxied(client, authz.url, method, target, headers)
    assert status >= 400
    assert (status, body) == (want_status, want_body)
    assert answer.get("WWW-Authenticate") == want.get("WWW-Authenticate")
    assert answer["Content-Type"] == "application/json"
    assert upstream.requests == []  # neither port forwarded anything


@pytest.mark.parametrize(
    ("path", "headers", "status", "detail"),
    [
        ("/nginx", {"X-Original-URI": "/items"}, 400, "exactly one X-Original-Method"),
        ("/nginx", {"X-Original-Method": "GET"}, 400, "exactly one X-Original-URI"),
        ("/forward-auth", {"X-Forwarded-Method": "GET"}, 400, "exactly one X-Forwarded-Uri"),
        ("/forward-auth", {"X-Forwarded-Method": "G T", "X-Forwarded-Uri": "/x"}, 400, "not an HTTP method"),
        ("/nginx", {"X-Original-Method": "GET", "X-Original-URI": ""}, 400, "X-Original-URI is empty"),
        (
            "/elsewhere",
            {"X-Original-Method": "GET", "X-Original-URI": "/public/x"},
            404,
            "no decision endpoint",
        ),
        ("/envoyx/public/x", {}, 404, "no decision endpoint"),
    ],
)
async def test_check_request_that_does_not_name_one_request_is_refused(
    path: str,
    headers: dict[str, str],
    status: int,
    detail: str,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
) -> None:
    async with client.get(authz.authz_url + path, headers=headers) as resp:
        assert resp.status == status
        answer = await resp.json()
    assert answer["error"] == ("not_found" if status == 404 else "bad_request")
    assert detail in answer["detail"]
    assert upstream.requests == []


async def test_lower_case_original_method_is_refused_by_the_gate(
    authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    status, body, _ = await ask(client, authz.authz_url, "forward_auth", "delete", "/public/x")
    assert status == 400
    assert body == b'{"detail":"request method must be upper-case","error":"bad_request"}'
    assert upstream.requests == []


async def test_repeated_original_uri_is_refused(
    authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    headers = [
        ("X-Original-Method", "GET"),
        ("X-Original-URI", "/public/x"),
        ("X-Original-URI", "/private/x"),
    ]
    async with client.get(authz.authz_url + "/nginx", headers=headers) as resp:
        assert resp.status == 400
        assert "exactly one X-Original-URI" in (await resp.json())["detail"]


async def test_original_request_headers_change_nothing_on_the_proxied_port(
    authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    plain = await proxied(client, authz.url, "DELETE", "/private/x")
    spoofed = await proxied(client, authz.url, "DELETE", "/private/x", ORIGINAL_SPOOF)
    assert spoofed[0] == 401
    assert spoofed[:2] == plain[:2]
    assert upstream.requests == []
    # and a public request stays that request: the upstream gets the path that was asked for
    status, _, _ = await proxied(
        client, authz.url, "GET", "/public/page", {**ORIGINAL_SPOOF, "X-Original-URI": "/private/x"}
    )
    assert status == 200
    assert upstream.last().raw_path == "/public/page"


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_each_endpoint_believes_only_its_own_headers(
    frontend: str, authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    # A client behind Envoy (or nginx, or Traefik) can send the other front ends' headers: they are ignored.
    status, body, _ = await ask(client, authz.authz_url, frontend, "GET", "/private/x", _foreign(frontend))
    assert status == 401
    assert b"missing_token" in body
    assert upstream.requests == []


def _foreign(frontend: str) -> dict[str, str]:
    own = {
        "nginx": ("X-Original-URI", "X-Original-Method"),
        "forward_auth": ("X-Forwarded-Uri", "X-Forwarded-Method"),
    }
    return {k: v for k, v in ORIGINAL_SPOOF.items() if k not in own.get(frontend, ())}


async def test_checks_are_counted_and_logged_like_proxied_requests(
    authz: RunningAuthz, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    with structlog.testing.capture_logs() as logs:
        assert (await ask(client, authz.authz_url, "nginx", "DELETE", "/private/x"))[0] == 401
        bearer = token("proxy:use", sub="carol")
        assert (
            await ask(
                client,
                authz.authz_url,
                "forward_auth",
                "POST",
                "/items",
                {"Authorization": f"Bearer {bearer}"},
            )
        )[0] == 200
    denied, allowed = [entry for entry in logs if entry["event"] == "request"]
    assert denied["authz"] == "nginx"
    assert (denied["method"], denied["path"], denied["status"]) == ("DELETE", "/private/x", 401)
    assert (denied["decision"], denied["error"]) == ("deny", "missing_token")
    assert (allowed["authz"], allowed["method"], allowed["path"]) == ("forward_auth", "POST", "/items")
    assert (allowed["decision"], allowed["subject"], allowed["route"]) == ("allow", "carol", "* /**")
    async with client.get(authz.admin_url + "/metrics") as resp:
        text = await resp.text()
    assert 'authproxy_requests_total{decision="deny",route="* /**",status="401"} 1.0' in text
    assert 'authproxy_requests_total{decision="allow",route="* /**",status="200"} 1.0' in text
    assert 'authproxy_denials_total{error="missing_token"} 1.0' in text


async def test_a_reload_applies_to_the_decision_port(
    authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    bearer = token("proxy:use")
    assert (
        await ask(
            client, authz.authz_url, "envoy", "GET", "/private/x", {"Authorization": f"Bearer {bearer}"}
        )
    )[0] == 403
    text = authz.config_path.read_text().replace(
        '"GET /private/**": [private:read]', '"GET /private/**": [proxy:use]'
    )
    authz.config_path.write_text(text)
    assert await authz.service.reloader.reload("test")
    assert (
        await ask(
            client, authz.authz_url, "envoy", "GET", "/private/x", {"Authorization": f"Bearer {bearer}"}
        )
    )[0] == 200
    assert upstream.requests == []


class _BrokenTable:
    """A route table with a bug in it: the decision port's outer boundary must still answer."""

    def match(self, method: str, segments: object) -> None:
        raise RuntimeError("a bug in route matching")


async def test_internal_error_answers_json_500(
    authz: RunningAuthz, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    holder = authz.service.holder
    holder.swap(dataclasses.replace(holder.current, table=_BrokenTable()))  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        status, body, headers = await ask(client, authz.authz_url, "nginx", "GET", "/items")
    assert (status, json.loads(body)) == (500, {"detail": "internal error", "error": "internal_error"})
    assert headers.getall("Server") == ["authproxy"]
    assert any(e["event"] == "unhandled error" and e["log_level"] == "error" for e in logs)
    assert any(e["event"] == "request" and e.get("outcome") == "error" for e in logs)
    assert upstream.requests == []
