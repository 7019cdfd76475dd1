"""THE table from outcome to wire answer: status, JSON body and WWW-Authenticate.

Every answer authproxy gives itself is rendered here, for the proxy and for `authproxy explain` alike, so the
two print the same bytes. Bodies carry `detail` (Agno's key, so AgentOS clients keep working) and `error`.
A body never echoes the token or a key: reasons are fixed phrases chosen by the stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from authproxy.errors import UpstreamError, UpstreamTimeout, UpstreamTlsError
from authproxy.policy.decision import Decision

__all__ = ["REALM", "Rendered", "render_decision", "render_error", "render_upstream_error"]

REALM = "authproxy"
_JSON = ("Content-Type", "application/json")

# wire error code -> HTTP status, for denials decided by the gate
_DENIAL_STATUS: dict[str, int] = {
    "bad_request": 400,
    "missing_token": 401,
    "invalid_token": 401,
    "insufficient_scope": 403,
}


@dataclass(frozen=True, slots=True)
class Rendered:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _body(fields: dict[str, object]) -> bytes:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


def _quoted(value: str) -> str:
    # auth-param values are quoted-strings: escape the two characters that could end or break one
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_decision(decision: Decision) -> Rendered:
    """The response for a denial; an allowed decision has no response of its own (ValueError)."""
    if decision.allowed or decision.error is None:
        raise ValueError("an allowed decision is forwarded, not rendered")
    status = _DENIAL_STATUS[decision.error]
    fields: dict[str, object] = {"detail": decision.reason, "error": decision.error}
    headers: list[tuple[str, str]] = [_JSON]
    if decision.error == "missing_token":
        headers.append(("WWW-Authenticate", f"Bearer realm={_quoted(REALM)}"))
    elif decision.error == "invalid_token":
        challenge = (
            f"Bearer realm={_quoted(REALM)}, error={_quoted('invalid_token')}, "
            f"error_description={_quoted(decision.reason)}"
        )
        headers.append(("WWW-Authenticate", challenge))
    elif decision.error == "insufficient_scope":
        fields["required_scopes"] = list(decision.required_scopes)
        fields["missing_scopes"] = list(decision.missing_scopes)
        challenge = (
            f"Bearer realm={_quoted(REALM)}, error={_quoted('insufficient_scope')}, "
            f"scope={_quoted(' '.join(decision.required_scopes))}"
        )
        headers.append(("WWW-Authenticate", challenge))
    return Rendered(status, tuple(headers), _body(fields))


def render_upstream_error(error: UpstreamError) -> Rendered:
    if isinstance(error, UpstreamTimeout):
        return render_error(504, "upstream_timeout", error.reason)
    if isinstance(error, UpstreamTlsError):
        return render_error(502, "upstream_tls_failed", error.reason)
    return render_error(502, "upstream_unavailable", error.reason)


def render_error(status: int, error: str, detail: str) -> Rendered:
    """Any other answer of our own (431, 500, 502, 504…)."""
    return Rendered(status, (_JSON,), _body({"detail": detail, "error": error}))
