"""Table-driven policy tests (`authproxy test -c CONFIG CASES.yaml`).

Each case is a request (its headers and body too), the claims of the token sent with it (or none), the
upstream's canned answers, and the expected status, error and body. Cases run through the real gate and
then every check after it that the proxied port runs before the upstream (cli/offline.py); the canned
answers stand in for the upstream's in owner lookups and response checks. The config's key material is
swapped for an ephemeral key of the same algorithm so tokens can be minted for any config (including
RS256/ES256 ones whose private key we do not hold), while audience, issuer, leeway, token sources, routes
and scopes stay exactly as configured.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from multidict import CIMultiDict

from authproxy.auth.mint import generate_private_key, mint_token
from authproxy.cli.offline import Canned, Explained, Request, after_the_gate
from authproxy.config.model import Config, PublicKeyFile, SecretKey
from authproxy.errors import ConfigError, Problem
from authproxy.gate import authorize
from authproxy.limits.memory import MemoryBuckets
from authproxy.limits.plan import build_limits
from authproxy.runtime import build_runtime
from authproxy.standards.jose import HMAC_ALGORITHMS, signing_key_kind
from authproxy.standards.json_text import read_json, write_json
from authproxy.standards.media import Unreadable

__all__ = ["Case", "CaseResult", "load_cases", "run_cases"]

_CASE_KEYS = {
    "name",
    "request",
    "claims",
    "headers",
    "body",
    "content_type",
    "upstream",
    "expect",
    "expect_error",
    "expired",
    "repeat",
}
_EXPECT_KEYS = {"status", "error", "body"}
_ANSWER_KEYS = {"status", "json", "body"}
_MAX_REPEAT = 100_000
_NOT_GIVEN = object()


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    method: str
    target: str
    claims: Mapping[str, Any] | None  # None: no token is sent
    headers: tuple[tuple[str, str], ...]
    expect: int
    expect_error: str | None
    expired: bool
    line: int
    repeat: int = 1  # sent this many times at one instant (rate limits count them); the last one is checked
    body: bytes | None = None  # None: no body given (the checks that read it are pending)
    upstream: tuple[Canned, ...] | None = None  # the upstream's answers, in the order they are asked for
    expect_body: Any = _NOT_GIVEN  # a mapping: these fields of the JSON answer; anything else: all of it


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    status: int
    error: str | None
    reason: str
    body: Any = None  # the answer's body: parsed JSON, else text; None when nothing is known of it
    pending: tuple[str, ...] = ()  # the checks that needed what the case did not give
    unused: int = 0  # canned upstream answers no check asked for: the case is not what it seems

    @property
    def passed(self) -> bool:
        error_ok = self.case.expect_error is None or self.case.expect_error == self.error
        return self.status == self.case.expect and error_ok and self._body_ok() and not self.unused

    def _body_ok(self) -> bool:
        expected = self.case.expect_body
        if expected is _NOT_GIVEN:
            return True
        if isinstance(expected, dict) and isinstance(self.body, dict):
            return all(self.body.get(k, _NOT_GIVEN) == v for k, v in expected.items())
        return bool(expected == self.body)


class _BadCase(Exception):
    """One problem of a case, reported at the case's line."""


def _parse_case(item: Any, line: int, path: str, problems: list[Problem]) -> Case | None:
    if not isinstance(item, dict):
        problems.append(Problem(path, line, "a case must be a mapping"))
        return None
    for key in sorted(set(item) - _CASE_KEYS):
        problems.append(Problem(path, line, f"unknown key {key!r} in case"))
    try:
        return _case(item, line)
    except _BadCase as bad:
        problems.append(Problem(path, line, str(bad)))
        return None


def _case(item: dict[str, Any], line: int) -> Case:
    request = item.get("request")
    if not isinstance(request, str) or len(request.split()) != 2:
        raise _BadCase("case needs `request: METHOD PATH`")
    status, error, expect_body = _expect(item)
    claims, headers = item.get("claims"), item.get("headers") or {}
    if claims is not None and not isinstance(claims, dict):
        raise _BadCase("`claims` must be a mapping")
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _BadCase("`headers` must map names to strings")
    repeat = item.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= _MAX_REPEAT:
        raise _BadCase(f"`repeat` must be a whole number from 1 to {_MAX_REPEAT}")
    body, content_type = _body(item)
    sent = [(str(k), v) for k, v in headers.items()]
    if content_type is not None:  # `content_type:` (or a JSON body's own) over any Content-Type header
        sent = [(k, v) for k, v in sent if k.lower() != "content-type"] + [("Content-Type", content_type)]
    method, target = request.split()
    return Case(
        name=str(item.get("name") or request),
        method=method,
        target=target,
        claims=claims,
        headers=tuple(sent),
        expect=status,
        expect_error=error,
        expired=bool(item.get("expired", False)),
        line=line,
        repeat=repeat,
        body=body,
        upstream=_upstream(item.get("upstream")),
        expect_body=expect_body,
    )


def _expect(item: dict[str, Any]) -> tuple[int, str | None, Any]:
    """`expect: STATUS`, or `expect: {status, error, body}`; `expect_error: CODE` beside either."""
    expect, error = item.get("expect"), item.get("expect_error")
    body: Any = _NOT_GIVEN
    if isinstance(expect, dict):
        for key in sorted(set(expect) - _EXPECT_KEYS):
            raise _BadCase(f"unknown key {key!r} in `expect` (it takes status, error and body)")
        if "error" in expect and error is not None:
            raise _BadCase("give the error once: `expect.error` or `expect_error`")
        error = expect.get("error", error)
        body = expect.get("body", _NOT_GIVEN)
        expect = expect.get("status")
    if not isinstance(expect, int) or isinstance(expect, bool):
        raise _BadCase("case needs `expect: STATUS` (an integer), or `expect: {status: STATUS, ...}`")
    if error is not None and not isinstance(error, str):
        raise _BadCase("the expected error is a code such as forbidden or insufficient_scope")
    return expect, error, body


def _body(item: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """The body's bytes and the Content-Type it goes with (None: the headers' own, if any)."""
    body, content_type = item.get("body"), item.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise _BadCase("`content_type` must be a string")
    if body is None:
        if content_type is not None:
            raise _BadCase("`content_type` goes with a `body`")
        return None, None
    if isinstance(body, dict | list):
        return write_json(body), content_type or "application/json"
    if isinstance(body, str):
        return body.encode(), content_type
    raise _BadCase("`body` is a mapping or a list (sent as JSON) or a string (sent as written)")


def _upstream(answers: Any) -> tuple[Canned, ...] | None:
    """`upstream: [{status: 200, json: {...}}, ...]`: the upstream's answers, in the order asked for."""
    if answers is None:
        return None
    if isinstance(answers, dict):
        answers = [answers]
    if not isinstance(answers, list) or not answers:
        raise _BadCase("`upstream` is a list of answers such as {status: 200, json: {...}}")
    canned = []
    for answer in answers:
        if (
            not isinstance(answer, dict)
            or set(answer) - _ANSWER_KEYS
            or ("json" in answer and "body" in answer)
        ):
            raise _BadCase(
                "an upstream answer is {status: STATUS, json: VALUE} or {status: STATUS, body: TEXT}"
            )
        status = answer.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise _BadCase("an upstream answer's status is an HTTP status (100 to 599)")
        text = answer.get("body", "")
        if not isinstance(text, str):
            raise _BadCase("an upstream answer's `body` is a string (use `json:` for a JSON value)")
        canned.append(Canned(status, write_json(answer["json"]) if "json" in answer else text.encode()))
    return tuple(canned)


def load_cases(path: str | Path) -> list[Case]:
    """Parse a cases file: a list of cases, or a mapping with a `cases:` list; raises ConfigError."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(name, 0, f"cannot read cases file: {err}")]) from err
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", -1) + 1
        raise ConfigError([Problem(name, line, f"YAML syntax error: {err}")]) from err
    if isinstance(root, yaml.MappingNode):
        root = next((v for k, v in root.value if k.value == "cases"), None)
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        raise ConfigError([Problem(name, 1, "expected a non-empty list of cases (or `cases:` list)")])
    problems: list[Problem] = []
    cases = []
    for node in root.value:
        item = yaml.SafeLoader(yaml.serialize(node)).get_single_data()
        case = _parse_case(item, node.start_mark.line + 1, name, problems)
        if case is not None:
            cases.append(case)
    if problems:
        raise ConfigError(problems)
    return cases


def _ephemeral_config(config: Config) -> tuple[Config, Any]:
    """The same config with one freshly generated key of its first algorithm, and the signing key."""
    alg = config.jwt.algorithms[0]
    if alg in HMAC_ALGORITHMS:
        secret = secrets.token_bytes(64)
        source: SecretKey | PublicKeyFile = SecretKey(secret=secret, line=0, origin="ephemeral")
        signing: Any = secret
    else:
        kind, curve = signing_key_kind(alg)
        signing = generate_private_key(kind, curve=curve)
        pem = signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        source = PublicKeyFile(path="<ephemeral>", pem=pem, line=0)
    jwt = dataclasses.replace(config.jwt, keys=(source,), algorithms=(alg,))
    return dataclasses.replace(config, jwt=jwt), signing


def _token_for(case: Case, config: Config, signing: Any) -> str:
    jwt = config.jwt
    claims: dict[str, Any] = {"sub": "policy-test-user"}
    if jwt.audience:
        claims["aud"] = jwt.audience[0]
    if jwt.issuer:
        claims["iss"] = jwt.issuer
    claims.update(case.claims or {})
    ttl = -3600 if case.expired else (None if "exp" in claims else 300)
    return mint_token(claims, alg=jwt.algorithms[0], key=signing, ttl=ttl)


async def run_cases(config: Config, cases: list[Case]) -> list[CaseResult]:
    test_config, signing = _ephemeral_config(config)
    runtime = build_runtime(test_config)
    results = []
    for case in cases:
        # Each case starts with full buckets on a clock that stands still, so counts are exact.
        store = MemoryBuckets(clock=lambda: 0.0)
        case_runtime = dataclasses.replace(runtime, limits=build_limits(test_config.rate_limits, store=store))
        headers: CIMultiDict[str] = CIMultiDict(case.headers)
        if case.claims is not None or case.expired:
            token = _token_for(case, test_config, signing)
            if test_config.jwt.sources[0] == "cookie":
                headers.add("Cookie", f"{test_config.jwt.cookie}={token}")
            else:
                headers.add(test_config.jwt.header, f"Bearer {token}")
        for _ in range(case.repeat):
            decision = await authorize(case_runtime, case.method, case.target, headers, consume=True)
        request = Request(case.method, case.target, headers, case.body)
        explained = after_the_gate(case_runtime, decision, request, case.upstream)
        results.append(_result(case, explained))
    return results


def _result(case: Case, explained: Explained) -> CaseResult:
    data = explained.body_bytes
    body: Any = None
    if data:
        try:
            body = read_json(data, what="the answer")
        except Unreadable:
            body = data.decode("utf-8", "replace")
    pending = tuple(c.label for c in explained.checks if c.result == "pending")
    d = explained.decision
    return CaseResult(case, explained.status, explained.error, d.reason, body, pending, explained.unused)
