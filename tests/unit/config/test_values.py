"""The pure value rules of config/values.py, each called directly: URLs, the key-URL transport rule (one
function for the loader and for every URL the key fetcher meets), names and claim paths."""

from __future__ import annotations

import pytest

from authproxy.auth.jwks import check_remote_url
from authproxy.config.values import (
    check_fetch_scheme,
    check_fetch_url,
    check_upstream_url,
    parse_claim_path,
    parse_token_name,
    split_http_url,
)

HTTPS_RULE = "must use https: keys fetched over http can be swapped in transit"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://idp.example.com/x", "must be an http:// or https:// URL"),
        ("idp.example.com/x", "must be an http:// or https:// URL"),
        ("https:///x", "must name a host"),
        ("https://user:secret@idp.example.com/x", "must not contain credentials"),
        ("https://idp.example.com/x#frag", "must not have a #fragment"),
        ("https://idp.example.com/x#", "must not have a #fragment"),
        ("https://idp.example.com:99999/x", "has an invalid port"),
    ],
)
def test_split_http_url_refuses_what_is_no_plain_http_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_http_url(url)


def test_split_http_url_keeps_the_parts() -> None:
    parts = split_http_url("https://idp.example.com:8443/base/path")
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == (
        "https",
        "idp.example.com",
        8443,
        "/base/path",
    )


@pytest.mark.parametrize("url", ["http://10.0.0.8:8080?x=1", "http://10.0.0.8/base?"])
def test_upstream_url_with_a_query_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="must not have a \\?query"):
        check_upstream_url(url)


def test_upstream_url_may_be_plain_http_to_any_host() -> None:
    check_upstream_url("http://10.0.0.8:8080/base")  # no exception: the upstream is the operator's own hop


@pytest.mark.parametrize(
    ("scheme", "host", "insecure"),
    [
        ("https", "idp.example.com", False),
        ("http", "localhost", False),
        ("http", "LOCALHOST", False),
        ("http", "127.0.0.1", False),
        ("http", "127.8.9.10", False),
        ("http", "::1", False),
        ("http", "idp.internal", True),
    ],
)
def test_fetch_scheme_accepts_https_loopback_http_or_an_explicit_opt_in(
    scheme: str, host: str, insecure: bool
) -> None:
    check_fetch_scheme(scheme, host, allow_insecure_http=insecure)  # no exception is the result


@pytest.mark.parametrize(
    ("scheme", "host"),
    [
        ("http", "idp.example.com"),
        ("http", "10.0.0.8"),
        ("http", "localhost.example.com"),
        ("http", "localhost."),  # an absolute DNS name a resolver may send anywhere, not the loopback name
        ("http", "127.0.0.1."),
        ("ftp", "127.0.0.1"),
        ("file", ""),
    ],
)
def test_fetch_scheme_refuses_plain_http_to_anything_but_loopback(scheme: str, host: str) -> None:
    with pytest.raises(ValueError, match=HTTPS_RULE):
        check_fetch_scheme(scheme, host, allow_insecure_http=False)


@pytest.mark.parametrize("url", ["http://localhost./jwks.json", "http://idp.example.com/jwks.json"])
def test_loader_and_fetcher_refuse_the_same_urls(url: str) -> None:
    """The config loader and the key fetcher (discovered jwks_uri, redirects) apply one rule."""
    with pytest.raises(ValueError, match=HTTPS_RULE):
        check_fetch_url(url, allow_insecure_http=False, issuer=False)
    with pytest.raises(ValueError, match=f"key URLs {HTTPS_RULE}"):
        check_remote_url(url)


@pytest.mark.parametrize("url", ["http://localhost/jwks.json", "http://[::1]:8080/jwks.json"])
def test_loader_and_fetcher_accept_the_same_loopback_urls(url: str) -> None:
    check_fetch_url(url, allow_insecure_http=False, issuer=False)
    assert str(check_remote_url(url)) == url


def test_issuer_with_a_query_is_refused_but_a_jwks_url_may_have_one() -> None:
    with pytest.raises(ValueError, match="an issuer must not have a \\?query"):
        check_fetch_url("https://idp.example.com/realm?x=1", allow_insecure_http=False, issuer=True)
    check_fetch_url("https://idp.example.com/jwks?x=1", allow_insecure_http=False, issuer=False)


@pytest.mark.parametrize("name", ["Authorization", "X-Auth-Token", "access_token", "a!#$%&'*+.^_`|~-1"])
def test_token_names_follow_rfc_9110(name: str) -> None:
    assert parse_token_name(name) == name


@pytest.mark.parametrize("name", ["", "X Auth", "X-Auth:", "Tök", "a/b", "(x)"])
def test_names_outside_rfc_9110_tokens_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a valid name"):
        parse_token_name(name)


@pytest.mark.parametrize("path", ["sub", "realm_access.roles", "a.b.c"])
def test_claim_paths_are_names_or_dotted_paths(path: str) -> None:
    assert parse_claim_path(path) == path


@pytest.mark.parametrize("path", ["", ".roles", "realm_access.", "a..b", " sub", "a. b"])
def test_malformed_claim_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="is not a claim name or a dotted path"):
        parse_claim_path(path)
