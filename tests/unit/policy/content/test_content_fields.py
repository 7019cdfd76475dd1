"""The content engine's pure parts: pinning query, form and JSON fields, and item scopes named in a body."""

from __future__ import annotations

import json

import pytest

from authproxy.config.content import ContentRule, FieldRef, ItemScopes, parse_field
from authproxy.errors import InsufficientScope, RequestRejected
from authproxy.policy.content.fields import Body, field_values, pin_body, pin_query
from authproxy.policy.content.items import check_items, item_satisfied_by
from authproxy.policy.content.plan import ContentPlan

USER = FieldRef("query", "user_id")
JSON_USER = parse_field("json:/user_id")
FORM_USER = FieldRef("form", "user_id")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/s", "/s?user_id=alice"),
        ("/s?", "/s?user_id=alice"),
        ("/s?limit=5", "/s?limit=5&user_id=alice"),
        ("/s?user_id=alice&limit=5", "/s?user_id=alice&limit=5"),
        ("/s?user_id=al%69ce", "/s?user_id=al%69ce"),  # the same id, percent-encoded: left as sent
    ],
)
def test_query_pin(target: str, expected: str) -> None:
    assert pin_query(target, USER, "alice") == expected


def test_query_pin_encodes_the_id() -> None:
    assert pin_query("/s", USER, "a&b=c d") == "/s?user_id=a%26b%3Dc%20d"


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/s?user_id=bob", 403),
        ("/s?user_id=", 403),
        ("/s?user_id=a&user_id=a", 400),
        ("/s?user_id%5B%5D=bob", 400),  # Express's qs merges user_id[] into user_id
        ("/s?user_id[x]=bob&user_id=a", 400),
    ],
)
def test_query_pin_refusals(target: str, status: int) -> None:
    with pytest.raises(RequestRejected) as refused:
        pin_query(target, USER, "a")
    assert refused.value.status == status


def pinned(body: Body, ref: FieldRef, value: str) -> tuple[str, bytes]:
    pin_body(body, ref, value)
    return body.encode()


def test_json_pin_sets_nested_field_and_keeps_the_rest() -> None:
    body = Body(b'{"meta": {"x": 1}, "n": [1, 2]}', "application/json; charset=utf-8")
    content_type, out = pinned(body, parse_field("json:/meta/owner"), "alice")
    assert content_type == "application/json"
    assert out == b'{"meta":{"x":1,"owner":"alice"},"n":[1,2]}'


def test_json_null_counts_as_absent() -> None:
    _, out = pinned(Body(b'{"user_id": null}', "application/json"), JSON_USER, "a")
    assert json.loads(out) == {"user_id": "a"}


def test_json_with_the_callers_id_is_still_forwarded_canonically() -> None:
    _, out = pinned(Body(b'{ "user_id" : "a",\n "x": 1.50 }', "application/json"), JSON_USER, "a")
    assert out == b'{"user_id":"a","x":1.5}'


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"user_id": 7}', 403),
        (b'{"user_id": "b"}', 403),
        (b'{"a": 1, "a": 2}', 400),
        (b"\xff", 400),
        (b"", 400),
        (b"[" * 65 + b"]" * 65, 400),
        (b"[" * 1500 + b"]" * 1500, 400),
        (b'{"x": NaN}', 400),
        (b'{"x": 1e999}', 400),
        (b'{"x": "\\ud800"}', 400),
        (b'\xef\xbb\xbf{"user_id": "a"}', 400),
        ('{"user_id": "a"}'.encode("utf-16"), 400),
    ],
)
def test_json_pin_refusals(raw: bytes, status: int) -> None:
    with pytest.raises(RequestRejected) as refused:
        pin_body(Body(raw, "application/json"), JSON_USER, "a")
    assert refused.value.status == status


@pytest.mark.parametrize(
    "raw",
    [b'{"user_id": "a", "USER_ID": "b"}', b'{"User_Id": "b"}', '{"u\u017fer_id": "b"}'.encode()],
)
def test_a_json_field_given_again_in_other_letter_case_is_malformed(raw: bytes) -> None:
    with pytest.raises(RequestRejected) as refused:
        pin_body(Body(raw, "application/json"), JSON_USER, "a")
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-7",
        "application/json; charset=utf-16",
        "application/json; charset=utf-8; charset=utf-7",
        "application/x-www-form-urlencoded; charset=utf-7",
        "multipart/form-data; boundary=XyZ; charset=utf-7",
        "text/plain",
        "",
    ],
)
def test_a_body_declared_in_another_charset_or_type_is_malformed(content_type: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        Body(b"{}", content_type)
    assert (refused.value.status, refused.value.code) == (400, "bad_request")


def test_urlencoded_pin_appends_and_refuses_duplicates() -> None:
    form = "application/x-www-form-urlencoded"
    assert pinned(Body(b"", form), FORM_USER, "a b") == (form, b"user_id=a%20b")
    assert pinned(Body(b"note=x+y&k=%7e", form), FORM_USER, "a") == (form, b"note=x%20y&k=~&user_id=a")
    with pytest.raises(RequestRejected) as refused:
        pin_body(Body(b"user_id=a&user_id=a", form), FORM_USER, "a")
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        b"note=x;user_id=b",
        b"note=%zz",
        b"note",
        b"=x",
        b"a=1&&b=2",
        b"note=caf\xc3\xa9",
        b"note=%ff",
        b"a b=1",
    ],
)
def test_urlencoded_that_readers_split_or_decode_differently_is_malformed(raw: bytes) -> None:
    with pytest.raises(RequestRejected) as refused:
        Body(raw, "application/x-www-form-urlencoded")
    assert refused.value.status == 400


@pytest.mark.parametrize("raw", [b"user_id%5B%5D=b", b"user_id%5B0%5D=b&user_id=a"])
def test_a_read_field_in_bracket_notation_is_malformed(raw: bytes) -> None:
    with pytest.raises(RequestRejected) as refused:
        pin_body(Body(raw, "application/x-www-form-urlencoded"), FORM_USER, "a")
    assert refused.value.status == 400


def test_a_charset_field_naming_another_charset_is_malformed() -> None:
    with pytest.raises(RequestRejected):
        Body(b"_charset_=utf-7&user_id=a", "application/x-www-form-urlencoded")
    assert Body(b"_charset_=UTF-8&user_id=a", "application/x-www-form-urlencoded").form()[1] == (
        "user_id",
        "a",
    )


MULTIPART = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="message"\r\n\r\n'
    b"hi\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="files"; filename="f.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
    b"\x00user_id\r\n"
    b"--XyZ--\r\n"
)


def test_multipart_pin_adds_a_part_the_parser_reads_back() -> None:
    body = Body(MULTIPART, "multipart/form-data; boundary=XyZ")
    content_type, out = pinned(body, FORM_USER, "alice")
    assert content_type.startswith("multipart/form-data; boundary=ap")
    reread = Body(out, content_type)
    assert field_values(reread, FORM_USER) == ["alice"]
    assert field_values(reread, FieldRef("form", "message")) == ["hi"]
    files = [p for p in reread.parts() if p.filename is not None]
    assert [(p.name, p.filename, p.content_type, p.data) for p in files] == [
        ("files", "f.bin", "application/octet-stream", b"\x00user_id")
    ]


def test_multipart_is_rebuilt_with_a_fresh_boundary_even_when_nothing_changes() -> None:
    raw = MULTIPART.replace(
        b"--XyZ--", b'--XyZ\r\nContent-Disposition: form-data; name="user_id"\r\n\r\nalice\r\n--XyZ--'
    )
    content_type, out = pinned(Body(raw, "multipart/form-data; boundary=XyZ"), FORM_USER, "alice")
    boundary = content_type.partition("boundary=")[2]
    assert b"XyZ" not in out
    assert out == raw.replace(b"XyZ", boundary.encode())


def test_a_file_part_cannot_stand_for_a_field_a_rule_reads() -> None:
    raw = MULTIPART.replace(b'name="files"', b'name="user_id"')
    with pytest.raises(RequestRejected) as refused:
        pin_body(Body(raw, "multipart/form-data; boundary=XyZ"), FORM_USER, "alice")
    assert refused.value.status == 400


def plan(*granted: str) -> ContentPlan:
    rule = ContentRule(items=(ItemScopes(parse_field("json:/agent_id"), ("agents:{value}:run",)),))
    return ContentPlan(rule, (("user_id", "u"), ("session_id", None)), (), frozenset(granted))


def test_item_scope_forms() -> None:
    assert item_satisfied_by("agents:{value}:run", "a1") == ("agents:a1:run", "agents:*:run", "agents:run")


@pytest.mark.parametrize("granted", ["agents:a1:run", "agents:*:run", "agents:run"])
def test_item_named_in_the_body_is_met(granted: str) -> None:
    check_items(plan(granted), Body(b'{"agent_id": "a1"}', "application/json"))


def test_item_named_in_the_body_without_its_scope() -> None:
    with pytest.raises(InsufficientScope) as short:
        check_items(plan("agents:a2:run", "agents:a1:read"), Body(b'{"agent_id": "a1"}', "application/json"))
    assert short.value.missing == ("agents:a1:run",)


@pytest.mark.parametrize("value", ['"a:b"', '""', "3", '"a b"', '"p2\\u0001"', '"n2\\r\\nX-Injected: 1"'])
def test_item_that_is_no_id_is_malformed(value: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        check_items(plan("agents:*:run"), Body(b'{"agent_id": %s}' % value.encode(), "application/json"))
    assert refused.value.status == 400


def test_no_item_named_needs_no_scope() -> None:
    check_items(plan(), Body(b'{"team_id": null}', "application/json"))


def test_multipart_part_with_two_dispositions_is_malformed() -> None:
    raw = MULTIPART.replace(
        b'Content-Disposition: form-data; name="message"\r\n',
        b'Content-Disposition: form-data; name="message"\r\n'
        b'Content-Disposition: form-data; name="user_id"\r\n',
    )
    with pytest.raises(RequestRejected) as refused:
        pin_body(Body(raw, "multipart/form-data; boundary=XyZ"), FORM_USER, "alice")
    assert refused.value.status == 400
