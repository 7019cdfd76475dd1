"""Which request a check request asks about: the original method and raw target, per front end.

- Envoy / Istio `ext_authz` (HTTP service): the check request *is* the original request, its path prefixed
  with `authz.path_prefix`; the method is its own.
- nginx `auth_request`, on NGINX_PATH: `X-Original-Method` and `X-Original-URI` (`$request_uri`).
- Traefik `forwardAuth` and ingress-nginx `auth-url`, on FORWARD_AUTH_PATH: `X-Forwarded-Method` and
  `X-Forwarded-Uri`.

Each endpoint believes its own two headers and no others: the front end in front of it overwrites those (a
client's copies never survive), while any other header a client sends arrives untouched. A missing, repeated
or malformed header is refused: guessing the method (the subrequest's own GET, say) would authorize a
different request than the one the front end then forwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from authproxy.config.authz import FORWARD_AUTH_PATH, NGINX_PATH
from authproxy.errors import BadTarget

__all__ = ["BadCheck", "Frontend", "Original", "original_request"]

Frontend = Literal["envoy", "nginx", "forward_auth"]

_HEADERS: dict[str, tuple[Frontend, str, str]] = {
    NGINX_PATH: ("nginx", "X-Original-Method", "X-Original-URI"),
    FORWARD_AUTH_PATH: ("forward_auth", "X-Forwarded-Method", "X-Forwarded-Uri"),
}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP method is a token (RFC 9110 5.6.2)


class BadCheck(BadTarget):
    """The check request does not say, unambiguously, which request it asks about (a 400)."""


class UnknownEndpoint(BadCheck):
    """Neither an endpoint of the decision port nor under `path_prefix` (a 404)."""


@dataclass(frozen=True, slots=True)
class Original:
    frontend: Frontend
    method: str
    target: str  # raw, as the client sent it: the gate refuses dot-segments, encoded slashes and the rest


def original_request(request: web.BaseRequest, path_prefix: str) -> Original:
    """The request this check asks about; BadCheck (UnknownEndpoint for a path we do not serve)."""
    raw_path = request.raw_path.partition("?")[0]
    fixed = _HEADERS.get(raw_path)
    if fixed is not None:
        frontend, method_header, uri_header = fixed
        method = _one(request, method_header)
        if _TOKEN.fullmatch(method) is None:
            raise BadCheck(f"{method_header} is not an HTTP method")
        return Original(frontend, method, _one(request, uri_header))
    if request.raw_path.startswith(path_prefix + "/"):
        return Original("envoy", request.method, request.raw_path[len(path_prefix) :])
    raise UnknownEndpoint(
        f"no decision endpoint here: use {NGINX_PATH}, {FORWARD_AUTH_PATH} or {path_prefix}/"
    )


def _one(request: web.BaseRequest, name: str) -> str:
    values = request.headers.getall(name, ())
    if len(values) != 1:
        raise BadCheck(f"the check request must carry exactly one {name} header")
    value: str = values[0]
    if not value:
        raise BadCheck(f"{name} is empty")
    return value
