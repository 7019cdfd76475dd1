"""parse_pattern: route key syntax, canonical form, specificity, and the pattern algebra used for ties."""

from __future__ import annotations

import pytest

from authproxy.policy.patterns import (
    NOT_ADMITTED,
    RANK_ANY,
    RANK_HEAD_VIA_GET,
    RANK_NAMED,
    covers,
    intersection,
    parse_pattern,
    shape_text,
)


def test_method_and_path_are_parsed() -> None:
    p = parse_pattern("POST /agents/{agent_id}/runs")
    assert p.key == "POST /agents/{agent_id}/runs"
    assert p.methods == frozenset({"POST"})
    assert p.segments == ("agents", None, "runs")
    assert p.param_names == (None, "agent_id", None)
    assert not p.tail
    assert p.canonical == "POST /agents/{}/runs"


def test_bare_path_means_every_method() -> None:
    p = parse_pattern("/docs")
    assert p.methods is None
    assert p.canonical == "* /docs"


def test_star_method_means_every_method() -> None:
    assert parse_pattern("* /docs").methods is None


def test_method_list_is_a_set_and_canonical_sorts_it() -> None:
    p = parse_pattern("HEAD,GET /agents/{id}/runs/")
    assert p.methods == frozenset({"GET", "HEAD"})
    assert p.canonical == "GET,HEAD /agents/{}/runs"


def test_extension_methods_are_tokens() -> None:
    assert parse_pattern("PROPFIND,M-SEARCH /dav").methods == frozenset({"PROPFIND", "M-SEARCH"})


def test_tail_matches_rest_and_is_not_a_segment() -> None:
    p = parse_pattern("GET /reports/**")
    assert p.tail
    assert p.segments == ("reports",)
    assert p.canonical == "GET /reports/**"


def test_root_patterns() -> None:
    assert parse_pattern("GET /").segments == ()
    everything = parse_pattern("/**")
    assert everything.segments == () and everything.tail
    assert everything.canonical == "* /**"


def test_one_trailing_slash_is_ignored() -> None:
    assert parse_pattern("GET /agents/").canonical == parse_pattern("GET /agents").canonical


def test_params_and_star_share_a_canonical() -> None:
    a = parse_pattern("GET /agents/{agent_id}")
    b = parse_pattern("GET /agents/{id}")
    c = parse_pattern("GET /agents/*")
    assert a.canonical == b.canonical == c.canonical == "GET /agents/{}"
    assert c.param_names == (None, None)


def test_literal_is_percent_decoded_and_canonical_reencodes_it() -> None:
    p = parse_pattern("GET /caf%C3%A9/a%2a")
    assert p.segments == ("café", "a*")
    assert p.canonical == "GET /caf%C3%A9/a%2A"
    assert parse_pattern("GET /caf%c3%a9/a%2A").canonical == p.canonical
    assert parse_pattern("GET /caf%C3%A9/*").canonical == "GET /caf%C3%A9/{}"


def test_extra_whitespace_between_method_and_path_is_allowed() -> None:
    assert parse_pattern("  GET   /a ").canonical == "GET /a"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "must be 'METHOD PATH' or 'PATH'"),
        ("GET /a /b", "must be 'METHOD PATH' or 'PATH'"),
        ("get /agents", "must be upper-case: write GET"),
        ("Get,POST /agents", "must be upper-case: write GET"),
        ("GET,* /agents", "cannot be listed with others"),
        ("GET,,POST /a", "is not an HTTP method"),
        ("GET, /a", "is not an HTTP method"),
        ("G(T /a", "is not an HTTP method"),
        ("GET agents", "must start with '/'"),
        ("agents", "must start with '/'"),
        ("GET /a?x=1", "path only"),
        ("GET /a#x", "path only"),
        ("GET //a", "empty segment"),
        ("GET /a//b", "empty segment"),
        ("GET /a//", "empty segment"),
        ("GET /a/./b", "dot-segment"),
        ("GET /a/..", "dot-segment"),
        ("GET /**/a", "'**' may only be the last segment"),
        ("GET /a/**/**", "'**' may only be the last segment"),
        ("GET /a*", "must be whole segments"),
        ("GET /a/{id}x", "must be whole segments"),
        ("GET /a/x{id}", "must be whole segments"),
        ("GET /a/***", "must be whole segments"),
        ("GET /a/{}", "parameter name"),
        ("GET /a/{1x}", "parameter name"),
        ("GET /a/{a-b}", "parameter name"),
        ("GET /a/{id}/b/{id}", "appears twice"),
        ("GET /a;b", "could never match"),
        ("GET /a%2Fb", "could never match"),
        ("GET /%2e%2e", "could never match"),
        ("GET /caf\u00e9", "could never match"),
        ("GET /a%zz", "could never match"),
        ("GET /a\\b", "could never match"),
    ],
)
def test_bad_route_key_is_refused_with_a_clear_message(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("?", r"\?")):
        parse_pattern(key)


def test_specificity_counts_literals_first() -> None:
    assert parse_pattern("GET /a/b/*").specificity > parse_pattern("GET /a/*/*").specificity
    assert parse_pattern("/a/b/c/**").specificity > parse_pattern("GET /a/*/c").specificity


def test_specificity_prefers_single_wildcards_over_tail() -> None:
    assert parse_pattern("GET /a/*").specificity > parse_pattern("GET /a/**").specificity
    assert parse_pattern("GET /a/*/**").specificity > parse_pattern("GET /a/**").specificity
    assert parse_pattern("GET /a/*/*").specificity > parse_pattern("GET /a/*/**").specificity


def test_specificity_prefers_named_methods_last() -> None:
    assert parse_pattern("GET /a/*").specificity > parse_pattern("/a/*").specificity
    assert parse_pattern("/a/b").specificity > parse_pattern("GET /a/*").specificity


def test_method_rank_falls_back_from_head_to_get() -> None:
    get = parse_pattern("GET /a")
    assert get.method_rank("GET") == RANK_NAMED
    assert get.method_rank("HEAD") == RANK_HEAD_VIA_GET
    assert get.method_rank("POST") == NOT_ADMITTED
    assert parse_pattern("HEAD /a").method_rank("GET") == NOT_ADMITTED
    assert parse_pattern("GET,HEAD /a").method_rank("HEAD") == RANK_NAMED
    assert parse_pattern("/a").method_rank("DELETE") == RANK_ANY


def test_method_rank_is_case_sensitive() -> None:
    assert parse_pattern("GET /a").method_rank("get") == NOT_ADMITTED


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ("/a/*", "/*/b", "/a/b"),
        ("/a/*/c", "/*/b/*", "/a/b/c"),
        ("/a/**", "/*/b", "/a/b"),
        ("/a/**", "/*/b/**", "/a/b/**"),
        ("/**", "/x/*", "/x/*"),
        ("/a", "/a/**", "/a"),
        ("/a/b", "/a/c", None),
        ("/a/*", "/a/*/*", None),
        ("/a/b/**", "/a/*", "/a/b"),
        ("/a/b/c/**", "/a/*", None),
        ("/a/b/**", "/a/c/**", None),
    ],
)
def test_intersection_of_two_patterns(a: str, b: str, shared: str | None) -> None:
    pa, pb = parse_pattern(a), parse_pattern(b)
    for x, y in ((pa, pb), (pb, pa)):
        shape = intersection(x, y)
        assert (None if shape is None else shape_text(shape)) == shared


@pytest.mark.parametrize(
    ("coverer", "shape_of", "covered"),
    [
        ("/a/b", "/a/b", True),
        ("/a/*", "/a/b", True),
        ("/a/**", "/a/b/**", True),
        ("/**", "/a/*", True),
        ("/a/b", "/a/*", False),
        ("/a/*", "/a/**", False),
        ("/a/*/*", "/a/*", False),
        ("/a/b/**", "/a/*/**", False),
    ],
)
def test_covers(coverer: str, shape_of: str, covered: bool) -> None:
    p = parse_pattern(shape_of)
    assert covers(parse_pattern(coverer), (p.segments, p.tail)) is covered
