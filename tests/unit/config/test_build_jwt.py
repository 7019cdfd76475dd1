"""config/build.py, the jwt section: algorithms, audience, token sources and names, claim paths, and the
issuer beside OIDC sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


@pytest.mark.parametrize(
    ("algorithms", "message"),
    [
        ("[NONE]", "jwt.algorithms[0]: 'none' is refused: it would accept unsigned tokens"),
        ("[hs256]", "jwt.algorithms[0]: unknown algorithm 'hs256' (did you mean HS256?)"),
        (
            "[ES256K]",
            "jwt.algorithms[0]: unknown algorithm 'ES256K'; use one of HS256, HS384, HS512, PS256, PS384, "
            "PS512, RS256, RS384, RS512, ES256, ES384, ES512, EdDSA",
        ),
        ("[HS256, HS256]", "jwt.algorithms[1]: HS256 is listed twice"),
        ("[]", "jwt.algorithms: must not be an empty list"),
        ("[[HS256]]", "jwt.algorithms[0]: expected a string, got a list"),
    ],
)
def test_bad_algorithms_are_refused(cfg: ConfigDir, head: str, algorithms: str, message: str) -> None:
    text = head.replace("algorithms: [HS256]", f"algorithms: {algorithms}")
    assert cfg.errors(text) == [f"config.yaml:4: {message}"]


def test_audience_string_becomes_a_tuple(cfg: ConfigDir, head: str) -> None:
    assert cfg.config(head).jwt.audience == ("api",)


def test_unset_audience_is_a_warning(cfg: ConfigDir, head: str) -> None:
    config, warnings = cfg.load(head.replace("  audience: api\n", ""))
    assert config.jwt.audience is None
    assert warnings == ["config.yaml:3: jwt.audience is not set, so a token's aud is not checked"]


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ('""', "jwt.audience: must not be empty"),
        ("[api, 7]", "jwt.audience[1]: expected a string, got an integer (quote it to make it text)"),
        ("{a: b}", "jwt.audience: expected a list, got a map"),
    ],
)
def test_bad_audience_is_refused(cfg: ConfigDir, head: str, audience: str, message: str) -> None:
    assert cfg.errors(head.replace("audience: api", f"audience: {audience}")) == [f"config.yaml:7: {message}"]


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ("[header, header]", "jwt.sources[1]: header is listed twice"),
        ("[query]", "jwt.sources[0]: must be one of header, cookie; got 'query'"),
        ("[]", "jwt.sources: must not be an empty list"),
    ],
)
def test_bad_sources_are_refused(cfg: ConfigDir, head: str, sources: str, message: str) -> None:
    assert cfg.errors(head + f"  sources: {sources}\n") == [f"config.yaml:8: {message}"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "header: X Token",
            "jwt.header: 'X Token' is not a valid name: use letters, digits and !#$%&'*+-.^_`|~",
        ),
        ("cookie: a;b", "jwt.cookie: 'a;b' is not a valid name: use letters, digits and !#$%&'*+-.^_`|~"),
        ("header: ''", "jwt.header: must not be empty"),
    ],
)
def test_bad_token_header_or_cookie_name_is_refused(
    cfg: ConfigDir, head: str, line: str, message: str
) -> None:
    assert cfg.errors(head + f"  {line}\n") == [f"config.yaml:8: {message}"]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (
            "{scopes: a..b}",
            "jwt.claims.scopes: 'a..b' is not a claim name or a dotted path such as realm_access.roles",
        ),
        (
            "{user_id: .sub}",
            "jwt.claims.user_id: '.sub' is not a claim name or a dotted path such as realm_access.roles",
        ),
        ("{roles: x}", "unknown key 'roles' in jwt.claims"),
        (
            "{session_id: 5}",
            "jwt.claims.session_id: expected a string, got an integer (quote it to make it text)",
        ),
    ],
)
def test_bad_claim_paths_are_refused(cfg: ConfigDir, head: str, claims: str, message: str) -> None:
    assert cfg.errors(head + f"  claims: {claims}\n") == [f"config.yaml:8: {message}"]


def test_issuer_must_agree_with_an_oidc_issuer(cfg: ConfigDir) -> None:
    text = """\
        upstream: {url: http://127.0.0.1:7777}
        jwt:
          algorithms: [RS256]
          keys:
            - oidc_issuer: https://idp.example.com
          audience: api
          issuer: https://other.example.com
        """
    assert cfg.errors(text) == ["config.yaml:7: jwt.issuer: differs from the oidc_issuer at line 5"]
