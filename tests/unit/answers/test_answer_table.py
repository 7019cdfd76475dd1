"""answers/table: the one table from outcome to wire answer (status, JSON body, headers)."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from authproxy.answers.table import OwnAnswer, render_answer, render_decision, render_upstream_error
from authproxy.errors import (
    AnswerCode,
    BadTarget,
    DenialCode,
    InsufficientScope,
    InvalidToken,
    KeyNotFound,
    MissingToken,
    RequestRejected,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    status_of,
)
from authproxy.policy.decision import Decision

JSON = ("Content-Type", "application/json")
SERVER = ("Server", "authproxy")


def deny(
    error: DenialCode, reason: str, required: tuple[str, ...] = (), missing: tuple[str, ...] = ()
) -> Decision:
    return Decision(False, error, reason, required_scopes=required, missing_scopes=missing)


def test_every_error_class_names_a_code_of_the_table() -> None:
    assert {cls: cls.code for cls in (BadTarget, MissingToken, InvalidToken, KeyNotFound)} == {
        BadTarget: "bad_request",
        MissingToken: "missing_token",
        InvalidToken: "invalid_token",
        KeyNotFound: "invalid_token",
    }
    assert (InsufficientScope.code, RequestRejected.code) == ("insufficient_scope", "bad_request")
    assert (UpstreamError.code, UpstreamUnavailable.code, UpstreamTimeout.code) == (
        "upstream_unavailable",
        "upstream_unavailable",
        "upstream_timeout",
    )
    answer_codes = {code for part in get_args(AnswerCode) for code in get_args(part)}
    assert set(get_args(DenialCode)) < answer_codes
    assert {a.error for a in OwnAnswer} <= answer_codes


def _error_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    pending: list[type[BaseException]] = [RequestRejected, UpstreamError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_each_error_class_carries_its_status_and_a_code_has_one_status() -> None:
    by_code: dict[str, set[int]] = {}
    for cls in _error_classes():
        by_code.setdefault(cls.code, set()).add(cls.status)  # type: ignore[attr-defined]
    assert all(len(statuses) == 1 for statuses in by_code.values()), by_code
    assert {code: status_of(code) for code in by_code} == {c: next(iter(s)) for c, s in by_code.items()}  # type: ignore[arg-type]
    expected = {
        "bad_request": 400,
        "missing_token": 401,
        "invalid_token": 401,
        "insufficient_scope": 403,
        "forbidden": 403,
        "not_found": 404,
        "method_not_allowed": 405,
        "payload_too_large": 413,
        "rate_limited": 429,
        "rate_limit_unavailable": 503,
        "proxied_port_only": 403,
        "upstream_unavailable": 502,
        "upstream_timeout": 504,
        "upstream_tls_failed": 502,
    }
    assert {code: status_of(code) for code in expected} == expected  # type: ignore[arg-type]


def test_a_stage_gives_the_body_and_headers_of_its_refusal_and_the_table_the_rest() -> None:
    decision = deny("insufficient_scope", "tool 'purge'", ("admin",), ("admin",))
    document = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32003, "message": "no"}}
    rendered = render_decision(decision, body=document, headers=(("Allow", "GET"),))
    assert rendered.status == 403
    assert json.loads(rendered.body) == document
    assert rendered.headers[:3] == (JSON, SERVER, ("Allow", "GET"))
    assert dict(rendered.headers)["WWW-Authenticate"].endswith('scope="admin"')


def test_missing_token_has_a_bare_challenge() -> None:
    rendered = render_decision(deny("missing_token", "authentication required: no bearer token"))
    assert rendered.status == 401
    assert rendered.headers == (JSON, SERVER, ("WWW-Authenticate", 'Bearer realm="authproxy"'))
    assert rendered.body == b'{"detail":"authentication required: no bearer token","error":"missing_token"}'


def test_invalid_token_challenge_quotes_the_reason() -> None:
    rendered = render_decision(deny("invalid_token", 'odd "quoted" \\ reason'))
    assert rendered.status == 401
    assert dict(rendered.headers)["WWW-Authenticate"] == (
        'Bearer realm="authproxy", error="invalid_token", error_description="odd \\"quoted\\" \\\\ reason"'
    )
    assert json.loads(rendered.body) == {"detail": 'odd "quoted" \\ reason', "error": "invalid_token"}


def test_insufficient_scope_lists_required_and_missing() -> None:
    rendered = render_decision(deny("insufficient_scope", "short", ("a:read", "b:run"), ("b:run",)))
    assert rendered.status == 403
    assert dict(rendered.headers)["WWW-Authenticate"] == (
        'Bearer realm="authproxy", error="insufficient_scope", scope="a:read b:run"'
    )
    assert json.loads(rendered.body) == {
        "detail": "short",
        "error": "insufficient_scope",
        "required_scopes": ["a:read", "b:run"],
        "missing_scopes": ["b:run"],
    }


def test_a_challenge_encodes_what_a_caller_named_in_a_required_scope() -> None:
    # Scopes built from ids a caller names (a body item, a tool argument): a CR LF or a control character
    # must not reach the header, nor a non-ASCII character; what is printable passes as it is, `%` included.
    required = ("agents:a\r\nSet-Cookie: x=1:run", "agents:\x00\t\x7fé:read", 'q"\\%41:read')
    rendered = render_decision(deny("insufficient_scope", "short", required, required[:1]))
    challenge = dict(rendered.headers)["WWW-Authenticate"]
    assert challenge == (
        'Bearer realm="authproxy", error="insufficient_scope", '
        'scope="agents:a%0D%0ASet-Cookie: x=1:run agents:%00%09%7F%C3%A9:read q\\"\\\\%41:read"'
    )
    assert all(" " <= c <= "~" for _, value in rendered.headers for c in value)
    assert json.loads(rendered.body)["required_scopes"] == list(required)  # the body keeps them, JSON-escaped


def test_an_error_description_is_encoded_too() -> None:
    rendered = render_decision(deny("invalid_token", "bad\r\nX: y \U0001f600"))
    assert dict(rendered.headers)["WWW-Authenticate"].endswith(
        'error_description="bad%0D%0AX: y %F0%9F%98%80"'
    )


def test_bad_request_has_no_challenge() -> None:
    rendered = render_decision(deny("bad_request", "dot-segment in path"))
    assert (rendered.status, rendered.headers) == (400, (JSON, SERVER))
    assert json.loads(rendered.body) == {"detail": "dot-segment in path", "error": "bad_request"}


def test_allowed_decision_is_not_rendered() -> None:
    with pytest.raises(ValueError, match="forwarded, not rendered"):
        render_decision(Decision(True, None, "ok"))


@pytest.mark.parametrize(
    ("decision", "detail"),
    [
        (deny("missing_token", "authentication required: no bearer token"), "Authorization header missing"),
        (deny("invalid_token", "token expired"), "Token has expired"),
        (
            deny("invalid_token", "audience mismatch"),
            "Invalid token audience - token not valid for this AgentOS instance",
        ),
        (
            deny("invalid_token", "signature verification failed"),
            "Invalid token: Signature verification failed",
        ),
        (deny("invalid_token", "malformed token"), "Invalid token: Malformed token"),
        (
            deny("insufficient_scope", "insufficient scope for this route", ("agents:run",), ("agents:run",)),
            "Insufficient permissions. Required scope(s): agents:run",
        ),
        (
            deny("insufficient_scope", "x", ("agents:read", "agents:run"), ("agents:run",)),
            "Insufficient permissions. Required scope(s): agents:read, agents:run",
        ),
        (deny("insufficient_scope", "no policy rule matches this route"), "Insufficient permissions"),
        (deny("bad_request", "dot-segment in path"), "dot-segment in path"),
    ],
)
def test_agentos_preset_words_detail_as_agno(decision: Decision, detail: str) -> None:
    agno = render_decision(decision, preset="agentos")
    ours = render_decision(decision)
    assert json.loads(agno.body)["detail"] == detail
    # everything but `detail` stays ours: status, error, scope fields and the challenge (with our reason)
    assert (agno.status, agno.headers) == (ours.status, ours.headers)
    assert {**json.loads(agno.body), "detail": None} == {**json.loads(ours.body), "detail": None}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UpstreamUnavailable("connection refused"), 502, "upstream_unavailable"),
        (UpstreamTimeout("read"), 504, "upstream_timeout"),
    ],
)
def test_upstream_failure(error: UpstreamError, status: int, code: str) -> None:
    rendered = render_upstream_error(error)
    assert (rendered.status, rendered.headers) == (status, (JSON, SERVER))
    assert json.loads(rendered.body) == {"detail": error.reason, "error": code}


@pytest.mark.parametrize(
    ("answer", "status", "code", "detail"),
    [
        (OwnAnswer.REQUEST_LINE_TOO_LONG, 414, "bad_request", "request line too long"),
        (OwnAnswer.HEADER_TOO_LARGE, 431, "bad_request", "request header fields too large"),
        (OwnAnswer.TOO_MANY_HEADERS, 431, "bad_request", "too many request header fields"),
        (OwnAnswer.BAD_WEBSOCKET_HANDSHAKE, 400, "bad_request", "malformed websocket handshake"),
        (OwnAnswer.INTERNAL_ERROR, 500, "internal_error", "internal error"),
    ],
)
def test_own_answers(answer: OwnAnswer, status: int, code: str, detail: str) -> None:
    rendered = render_answer(answer)
    assert (rendered.status, rendered.headers) == (status, (JSON, SERVER))
    assert json.loads(rendered.body) == {"detail": detail, "error": code}
