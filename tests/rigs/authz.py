"""Parts of the external-authorization rig: the proxy with its decision port, the three ways a front end
asks it (Envoy's prefixed path, nginx's X-Original-*, Traefik's X-Forwarded-*), and the same request asked
of either port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from authproxy.serve.lifecycle import ProxyService
from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory

ENVOY_PREFIX = "/envoy"
FRONTENDS = ("envoy", "nginx", "forward_auth")
IDENTITY = ("X-Auth-User-Id", "X-Auth-Session-Id", "X-Auth-Scopes")
# A client posing as someone else; some stacks fold the underscore spelling onto the dashed one.
SPOOFED = {
    "X-Auth-User-Id": "admin",
    "X-Auth-Session-Id": "stolen",
    "X-Auth-Scopes": "proxy:admin",
    "X_Auth_Scopes": "proxy:admin",
}


def authz_config(
    upstream_url: str, secret: bytes, *, authz: str = "", authz_listen: str = "127.0.0.1:0", **options: str
) -> str:
    """The integration rig's proxy config plus a decision port (by default on an OS-chosen port)."""
    return config_text(upstream_url, secret, **options) + f"authz_listen: {authz_listen}\n" + authz


@dataclass
class RunningAuthz:
    service: ProxyService
    url: str  # the proxied port
    authz_url: str  # the decision port
    admin_url: str
    config_path: Path


class AuthzFactory(Protocol):
    async def __call__(self, upstream_url: str, *, authz: str = "", **options: str) -> RunningAuthz: ...


def check_request(
    frontend: str, authz_url: str, method: str, target: str, headers: dict[str, str]
) -> tuple[str, str, dict[str, str]]:
    """(method, URL, headers) of the check request `frontend` sends for the client request `method target`."""
    if frontend == "envoy":
        return method, authz_url + ENVOY_PREFIX + target, headers
    if frontend == "nginx":
        # an nginx subrequest is a GET whatever the client's method
        return "GET", authz_url + "/nginx", {**headers, "X-Original-Method": method, "X-Original-URI": target}
    extra = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Uri": target,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example",
    }
    return "GET", authz_url + "/forward-auth", {**headers, **extra}


async def ask(
    client: aiohttp.ClientSession,
    authz_url: str,
    frontend: str,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    """The decision port's answer to the check `frontend` sends for the client request `method target`."""
    verb, url, sent = check_request(frontend, authz_url, method, target, headers or {})
    async with client.request(verb, URL(url, encoded=True), headers=sent) as resp:
        return resp.status, await resp.read(), resp.headers


async def proxied(
    client: aiohttp.ClientSession, url: str, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    """The proxied port's answer to the same request, the target sent as written."""
    async with client.request(method, URL(url + target, encoded=True), headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


async def fetch(
    session: aiohttp.ClientSession, method: str, target: str, headers: dict[str, str]
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    """A client request through an engine (the session's connector reaches it), the target sent as written."""
    async with session.request(
        method, URL("http://app.example" + target, encoded=True), headers=headers
    ) as resp:
        return resp.status, await resp.read(), resp.headers


# Requests every front end must refuse before the upstream: (id, method, target, what the client presents).
ENGINE_DENIALS = [
    ("no token", "GET", "/private/x", None),
    ("invalid token", "GET", "/private/x", "not.a.jwt"),
    ("insufficient scope", "GET", "/private/x", "use-only"),
    ("method judged as sent", "DELETE", "/private/x", "read-only"),
    ("dot-segment", "GET", "/public/../private/x", None),
    ("encoded slash", "GET", "/public%2F..%2Fprivate/x", None),
    ("encoded dot-segment", "GET", "/public/%2e%2e/private/x", None),
    ("spoofed original-request headers", "GET", "/private/x", "spoof"),
]
_SCOPES = {"use-only": ("proxy:use",), "read-only": ("private:read",)}
# Original-request headers a client sends to pose as asking for a public page.
ORIGINAL_SPOOF = {
    "X-Original-URI": "/public/x",
    "X-Original-Method": "GET",
    "X-Forwarded-Uri": "/public/x",
    "X-Forwarded-Method": "GET",
}


def presented(kind: str | None, token: TokenFactory) -> dict[str, str]:
    """The headers of an ENGINE_DENIALS case: a token of those scopes, a raw token, or spoofed headers."""
    if kind is None:
        return {}
    if kind == "spoof":
        return dict(ORIGINAL_SPOOF)
    return {"Authorization": f"Bearer {token(*_SCOPES[kind]) if kind in _SCOPES else kind}"}
