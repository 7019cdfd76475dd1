"""parse_target: the single canonicaliser. Every refusal has a case; accepted targets keep their raw bytes."""

from __future__ import annotations

import pytest

from authproxy.errors import BadTarget
from authproxy.policy.target import Target, decode_segment, parse_target


@pytest.mark.parametrize(
    ("raw", "path", "query", "segments"),
    [
        ("/", "/", None, ()),
        ("/agents", "/agents", None, ("agents",)),
        ("/agents/", "/agents/", None, ("agents",)),
        ("/agents/web-agent/runs", "/agents/web-agent/runs", None, ("agents", "web-agent", "runs")),
        ("/a?", "/a", "", ("a",)),
        ("/a?x=1&y=%zz;\\", "/a", "x=1&y=%zz;\\", ("a",)),
        ("/a?b=/../c", "/a", "b=/../c", ("a",)),
        ("/a%20b/c", "/a%20b/c", None, ("a b", "c")),
        ("/caf%C3%A9", "/caf%C3%A9", None, ("café",)),
        ("/caf%c3%a9/", "/caf%c3%a9/", None, ("café",)),
        ("/a%3Bb", "/a%3Bb", None, ("a;b",)),
        ("/%25", "/%25", None, ("%",)),
        ("/a/.hidden/...", "/a/.hidden/...", None, ("a", ".hidden", "...")),
        ("/a.b/c..d/%2e%2e%2e", "/a.b/c..d/%2e%2e%2e", None, ("a.b", "c..d", "...")),
        ("/x:y/@z/~u/!$&'()*+,=", "/x:y/@z/~u/!$&'()*+,=", None, ("x:y", "@z", "~u", "!$&'()*+,=")),
    ],
)
def test_origin_form_target_is_split_and_decoded(
    raw: str, path: str, query: str | None, segments: tuple[str, ...]
) -> None:
    assert parse_target(raw) == Target(path=path, query=query, segments=segments)


def test_target_fields_are_immutable() -> None:
    target = parse_target("/a")
    with pytest.raises(AttributeError):
        target.path = "/b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "*",
        "agents",
        "http://upstream/agents",
        "https://upstream:443/agents",
        "upstream:7777",
        "?x=1",
    ],
)
def test_non_origin_form_target_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="origin form"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["//agents", "/agents//runs", "/agents/x//", "//"])
def test_empty_segment_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="empty path segment"):
        parse_target(raw)


@pytest.mark.parametrize(
    "raw", ["/.", "/..", "/a/./b", "/a/../b", "/a/..", "/a/.", "/./a", "/../a", "/a/..?x", "/a%20/../b"]
)
def test_dot_segment_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="dot-segment"):
        parse_target(raw)


@pytest.mark.parametrize(
    "raw", ["/%2e", "/%2E", "/a/%2e%2e/b", "/a/%2E%2e/b", "/a/.%2e", "/a/%2e./b", "/a/%2E%2E", "/a/%2e/b"]
)
def test_encoded_dot_segment_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="dot-segment"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a%2Fb", "/a%2fb", "/public/..%2F..%2Fadmin", "/%2F"])
def test_encoded_slash_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="'/'"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a\\b", "/a\\..\\b", "/a%2e\\"])
def test_raw_backslash_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="not allowed"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a%5Cb", "/a%5c..%5cb"])
def test_encoded_backslash_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="percent-encoded"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a\x00b", "/a\x01", "/a\tb", "/a\nb", "/a\rb", "/a\x1f", "/a\x7f", "/a b"])
def test_raw_control_character_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="not allowed"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a%00", "/a%00.json", "/a%01", "/a%09", "/a%0A", "/a%0d", "/a%1F", "/a%7f"])
def test_encoded_control_character_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="percent-encoded"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a#b", "/a#", "/#/admin", "/a?x=1#frag", "/a%20#b", "/a?#"])
def test_fragment_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="fragment"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a;b", "/admin;jsessionid=1", "/a/..;/b", "/a%20;x"])
def test_path_parameter_semicolon_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="';'"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a%zz", "/a%4", "/a%", "/a%/b", "/a%%32%66", "/a%g0", "/a%0"])
def test_malformed_escape_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="malformed"):
        parse_target(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "/a%c0%ae",  # overlong '.'
        "/a%c0%af",  # overlong '/'
        "/%e0%80%ae",  # three-byte overlong '.'
        "/a%ed%a0%80",  # UTF-16 surrogate
        "/a%ff",
        "/a%c3",  # truncated sequence
        "/a%80",  # lone continuation byte
    ],
)
def test_invalid_utf8_escape_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="UTF-8"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/café", "/a/\u00e9", "/\u2215etc", "/a\u0085"])
def test_raw_non_ascii_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="not allowed"):
        parse_target(raw)


@pytest.mark.parametrize("raw", ["/a%252F", "/a%252e%252e", "/%25%32%46"])
def test_double_encoding_is_refused(raw: str) -> None:
    with pytest.raises(BadTarget, match="double"):
        parse_target(raw)


def test_decode_segment_matches_parse_target() -> None:
    assert decode_segment("caf%C3%A9") == "café"
    assert decode_segment("plain") == "plain"


@pytest.mark.parametrize("segment", ["a;b", "é", "a b", "%2F", "%2e%2e", "%zz", "a#b"])
def test_decode_segment_refuses_what_a_target_refuses(segment: str) -> None:
    with pytest.raises(BadTarget):
        decode_segment(segment)
