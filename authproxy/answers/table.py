"""THE table from outcome to wire answer: status, JSON body and headers of every answer of our own.

Denials decided by the gate, upstream failures, the HTTP parser's refusals, the WebSocket handshake refusal
and the last-resort 500 are all rendered here, for the proxy and for `authproxy explain` alike, so the two
print the same bytes. Bodies carry `detail` (Agno's key, so AgentOS clients keep working) and `error`.
A body never echoes the token or a key: reasons are fixed phrases chosen by the stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from aiohttp import web

from authproxy.errors import AnswerCode, DenialCode, UpstreamError, status_of
from authproxy.limits.headers import limit_answer
from authproxy.policy.decision import Decision

__all__ = [
    "REALM",
    "SERVER",
    "OwnAnswer",
    "Rendered",
    "render_answer",
    "render_decision",
    "render_upstream_error",
    "respond",
    "stamp_server",
]

REALM = "authproxy"
# aiohttp would name itself and its version (`Python/3.11 aiohttp/3.14.5`): a free map of what to attack.
SERVER = "authproxy"
_FIXED: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"), ("Server", SERVER))


class OwnAnswer(Enum):
    """Answers given outside the gate, each with its status, `error` and fixed `detail`."""

    REQUEST_LINE_TOO_LONG = (414, "bad_request", "request line too long")
    HEADER_TOO_LARGE = (431, "bad_request", "request header fields too large")
    TOO_MANY_HEADERS = (431, "bad_request", "too many request header fields")
    BAD_METHOD = (400, "bad_request", "malformed or unsupported request method")
    BAD_REQUEST_TARGET = (400, "bad_request", "malformed request target")
    MALFORMED_REQUEST = (400, "bad_request", "malformed HTTP request")
    BAD_WEBSOCKET_HANDSHAKE = (400, "bad_request", "malformed websocket handshake")
    INTERNAL_ERROR = (500, "internal_error", "internal error")
    NOT_AN_MCP_METHOD = (405, "method_not_allowed", "an MCP endpoint takes GET, POST and DELETE")
    HOST_NOT_ONE_HOST = (400, "bad_request", "the Host header does not name one host")
    # the decision port (authproxy/authz)
    CHECK_WITHOUT_REQUEST = (400, "bad_request", "the check request carries no HTTP request")

    def __init__(self, status: int, error: AnswerCode, detail: str) -> None:
        self.status = status
        self.error = error
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Rendered:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _body(fields: object) -> bytes:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


# Printable ASCII passes as it is: RFC 6749 scope tokens are made of it, `%` included, and RFC 6750 defines no
# decoding of auth-param values, so a client compares them verbatim. Encoding `%` too would change every
# legitimate scope holding one, for reversibility nobody uses; ids holding control characters are refused
# (400) before any challenge names them, so this encoding is only the last wall for the header itself.
_PRINTABLE = "".join(map(chr, range(0x20, 0x7F)))


def _quoted(value: str) -> str:
    """An auth-param value as a quoted-string: anything but printable ASCII percent-encoded as UTF-8 (a scope
    may hold an id a caller named: CR LF must never split the header), then `"` and `\\` escaped."""
    safe = quote(value, safe=_PRINTABLE, errors="surrogatepass")
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Agno 3.1.10's phrases (agno/os/middleware/jwt.py) for the reasons it words its own way.
_AGNO_INVALID = {
    "token expired": "Token has expired",
    "audience mismatch": "Invalid token audience - token not valid for this AgentOS instance",
}


def _detail(decision: Decision, error: DenialCode, preset: str | None) -> str:
    if preset != "agentos" or error not in ("missing_token", "invalid_token", "insufficient_scope"):
        return decision.reason
    if error == "missing_token":
        return "Authorization header missing"  # AgentOS reads the header only
    if error == "invalid_token":
        reason = decision.reason
        # Agno appends PyJWT's message, which starts with a capital ("Signature verification failed").
        return _AGNO_INVALID.get(reason, f"Invalid token: {reason[:1].upper()}{reason[1:]}")
    if decision.required_scopes:
        return f"Insufficient permissions. Required scope(s): {', '.join(decision.required_scopes)}"
    return "Insufficient permissions"


def render_decision(
    decision: Decision,
    *,
    preset: str | None = None,
    body: object = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Rendered:
    """The response for a denial; an allowed decision has no response of its own (ValueError).

    Under `preset: agentos`, `detail` is worded as Agno words it, so clients moved from Agno's middleware
    show the same messages; `error`, the scope fields and the challenge stay ours. A stage with an error
    shape of its own (MCP's JSON-RPC error object) gives the `body`, and any `headers` its refusal needs;
    status and challenge are still this table's.
    """
    error = decision.error
    if decision.allowed or error is None:
        raise ValueError("an allowed decision is forwarded, not rendered")
    fields: dict[str, object] = {"detail": _detail(decision, error, preset), "error": error}
    out = [*_FIXED, *headers]
    if error == "missing_token":
        out.append(("WWW-Authenticate", f"Bearer realm={_quoted(REALM)}"))
    elif error == "invalid_token":
        challenge = (
            f"Bearer realm={_quoted(REALM)}, error={_quoted('invalid_token')}, "
            f"error_description={_quoted(decision.reason)}"
        )
        out.append(("WWW-Authenticate", challenge))
    elif error == "insufficient_scope":
        fields["required_scopes"] = list(decision.required_scopes)
        fields["missing_scopes"] = list(decision.missing_scopes)
        challenge = (
            f"Bearer realm={_quoted(REALM)}, error={_quoted('insufficient_scope')}, "
            f"scope={_quoted(' '.join(decision.required_scopes))}"
        )
        out.append(("WWW-Authenticate", challenge))
    elif decision.rate_limit is not None:
        extra_fields, extra_headers = limit_answer(decision.rate_limit)
        fields.update(extra_fields)
        out.extend(extra_headers)
    return Rendered(status_of(error), tuple(out), _body(fields if body is None else body))


def render_upstream_error(error: UpstreamError) -> Rendered:
    return Rendered(error.status, _FIXED, _body({"detail": error.reason, "error": error.code}))


def render_answer(answer: OwnAnswer) -> Rendered:
    return Rendered(answer.status, _FIXED, _body({"detail": answer.detail, "error": answer.error}))


def respond(rendered: Rendered) -> web.Response:
    return web.Response(status=rendered.status, headers=rendered.headers, body=rendered.body)


async def stamp_server(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook for an aiohttp Application of ours (the admin port): no version banner."""
    del request
    response.headers["Server"] = SERVER
