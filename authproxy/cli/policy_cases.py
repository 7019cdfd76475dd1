"""Table-driven policy tests (`authproxy test -c CONFIG CASES.yaml`).

Each case is a request, the claims of the token sent with it (or none) and the expected status. Cases run
through the real gate: the config's key material is swapped for an ephemeral key of the same algorithm so
tokens can be minted for any config (including RS256/ES256 ones whose private key we do not hold), while
audience, issuer, leeway, token sources, routes and scopes stay exactly as configured.
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
from authproxy.config.model import Config, PublicKeyFile, SecretKey
from authproxy.errors import ConfigError, Problem
from authproxy.gate import authorize
from authproxy.limits.memory import MemoryBuckets
from authproxy.limits.plan import build_limits
from authproxy.proxy.responses import render_decision
from authproxy.runtime import build_runtime
from authproxy.standards.jose import HMAC_ALGORITHMS, signing_key_kind

__all__ = ["Case", "CaseResult", "load_cases", "run_cases"]

_CASE_KEYS = {"name", "request", "claims", "headers", "expect", "expect_error", "expired", "repeat"}
_MAX_REPEAT = 100_000


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


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    status: int
    error: str | None
    reason: str

    @property
    def passed(self) -> bool:
        error_ok = self.case.expect_error is None or self.case.expect_error == self.error
        return self.status == self.case.expect and error_ok


def _parse_case(item: Any, line: int, path: str, problems: list[Problem]) -> Case | None:
    if not isinstance(item, dict):
        problems.append(Problem(path, line, "a case must be a mapping"))
        return None
    unknown = sorted(set(item) - _CASE_KEYS)
    for key in unknown:
        problems.append(Problem(path, line, f"unknown key {key!r} in case"))
    request, expect = item.get("request"), item.get("expect")
    if not isinstance(request, str) or len(request.split()) != 2:
        problems.append(Problem(path, line, "case needs `request: METHOD PATH`"))
        return None
    if not isinstance(expect, int) or isinstance(expect, bool):
        problems.append(Problem(path, line, "case needs `expect: STATUS` (an integer)"))
        return None
    claims, headers = item.get("claims"), item.get("headers") or {}
    if claims is not None and not isinstance(claims, dict):
        problems.append(Problem(path, line, "`claims` must be a mapping"))
        return None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        problems.append(Problem(path, line, "`headers` must map names to strings"))
        return None
    repeat = item.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= _MAX_REPEAT:
        problems.append(Problem(path, line, f"`repeat` must be a whole number from 1 to {_MAX_REPEAT}"))
        return None
    method, target = request.split()
    return Case(
        name=str(item.get("name") or request),
        method=method,
        target=target,
        claims=claims,
        headers=tuple((str(k), v) for k, v in headers.items()),
        expect=expect,
        expect_error=item.get("expect_error"),
        expired=bool(item.get("expired", False)),
        line=line,
        repeat=repeat,
    )


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
        status = (
            200 if decision.allowed else render_decision(decision, preset=test_config.policy.preset).status
        )
        results.append(CaseResult(case, status, decision.error, decision.reason))
    return results
