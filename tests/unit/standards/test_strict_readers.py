"""The strict readers refuse every body a parser could read two ways, and read the plain ones."""

from __future__ import annotations

import pytest

from authproxy.standards.json_text import read_json
from authproxy.standards.media import MediaType, Unreadable, check_charset, parse_media_type
from authproxy.standards.multipart import Part, boundary_of, read_multipart

OK_PART = b'Content-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
A = b'Content-Disposition: form-data; name="a"\r\n'


def framed(*parts: bytes, close: bytes = b"--B--\r\n") -> bytes:
    return b"".join(b"--B\r\n" + p for p in parts) + close


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; Boundary=A; boundary=B",
        "multipart/form-data; boundary*=UTF-8''A; boundary=B",
        "multipart/form-data; boundary=A,B",
        "multipart/form-data; boundary=A B",
        'multipart/form-data; boundary="A\\"B"',
        'multipart/form-data; boundary="A',
        "multipart/form-data; boundary=",
        "multipart/form-data boundary=B",
        "multipart/form-data; boundary=B; boundary=B",
    ],
)
def test_an_ambiguous_boundary_parameter_is_unreadable(content_type: str) -> None:
    with pytest.raises(Unreadable):
        boundary_of(parse_media_type(content_type))


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=B", "B"),
        ('Multipart/Form-Data ; BOUNDARY="a b:c"', "a b:c"),
        (
            "multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            "----WebKitFormBoundary7MA4YWxkTrZu0gW",
        ),
    ],
)
def test_a_plain_boundary_parameter_is_read(content_type: str, boundary: str) -> None:
    assert boundary_of(parse_media_type(content_type)) == boundary


@pytest.mark.parametrize(
    "body",
    [
        # a close delimiter after a bare LF ends the body for the stdlib email parser, not python-multipart
        framed(b'Content-Disposition: form-data; name="note"\r\n\r\nhello\n--B--\n\r\n', OK_PART),
        framed(b'Content-Disposition: form-data; name="note"\r\n\r\nhello\r--B\r\n'),
        b"preamble\r\n" + framed(OK_PART),
        framed(OK_PART, close=b"--B--\r\nepilogue"),
        framed(OK_PART, close=b"--B--  \r\n"),
        framed(OK_PART, close=b""),
        b"--B  \r\n" + OK_PART + b"--B--\r\n",  # transport padding
        framed(b'Content-Disposition: form-data; name="note"\r\n\r\nx--By\r\n'),  # the boundary inside a part
        framed(b'Content-Disposition: form-data; name="note"\n\nhi\r\n'),  # LF header lines
        framed(b'Content-Disposition: form-data; name="note"\r\n folded\r\n\r\nhi\r\n'),
        framed(b"Content-Disposition: form-data; name=\"note\"; name*=UTF-8''user_id\r\n\r\nhi\r\n"),
        framed(b'Content-Disposition: form-data; name="note"; name="user_id"\r\n\r\nhi\r\n'),
        framed(A + b'Content-Disposition: form-data; name="b"\r\n\r\nx\r\n'),
        framed(
            b'Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: base64\r\n\r\neA==\r\n'
        ),
        framed(A + b"Content-Type: multipart/mixed; boundary=C\r\n\r\nx\r\n"),
        framed(A + b"Content-Type: text/plain; charset=utf-7\r\n\r\nx\r\n"),
        framed(b'Content-Disposition: form-data; name="/user_id"\r\n\r\nb\r\n'),  # aiohttp strips the '/'
        framed(b'Content-Disposition: form-data; name="a;b;c"\r\n\r\nx\r\n'),
        framed(b'Content-Disposition: attachment; name="a"\r\n\r\nx\r\n'),
        framed(b"Content-Type: text/plain\r\n\r\nx\r\n"),
        framed(b'Content-Disposition: form-data; name="a"\r\n\r\n\xff\r\n'),  # a field that is not UTF-8
        framed(b'Content-Disposition: form-data; name="a\x01"\r\n\r\nx\r\n'),
        framed(b'Content-Disposition: form-data; name="a"; filename=""\r\n\r\nx\r\n'),  # file or field?
    ],
)
def test_a_multipart_body_that_parsers_frame_differently_is_unreadable(body: bytes) -> None:
    with pytest.raises(Unreadable):
        read_multipart(body, "B")


def test_a_file_input_with_no_file_chosen_is_left_out() -> None:
    empty = (
        b'Content-Disposition: form-data; name="files"; filename=""\r\nContent-Type: application/octet-stream'
    )
    assert read_multipart(framed(OK_PART, empty + b"\r\n\r\n\r\n"), "B") == [Part("note", b"hi")]


def test_a_plain_multipart_body_is_read_with_its_files() -> None:
    body = framed(
        OK_PART,
        b"content-disposition: Form-Data; Name=user_id\r\nX-Ignored: 1\r\n\r\nalice\r\n",
        b'Content-Disposition: form-data; name="f"; filename="r\xc3\xa9sum\xc3\xa9.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n\x00\r\n--Bx\xff\r\n",
    )
    with pytest.raises(Unreadable):  # "--Bx" holds the boundary: refused even inside a file
        read_multipart(body, "B")
    body = body.replace(b"--Bx", b"-Bx")
    assert read_multipart(body, "B") == [
        Part("note", b"hi"),
        Part("user_id", b"alice"),
        Part("f", b"\x00\r\n-Bx\xff", "résumé.pdf", "application/pdf"),
    ]


@pytest.mark.parametrize("charset", ["utf-7", "UTF-16", "latin-1", "utf-8 ", ""])
def test_a_charset_other_than_utf8_is_refused(charset: str) -> None:
    with pytest.raises(Unreadable):
        check_charset(parse_media_type(f'application/json; charset="{charset}"'))


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", "us-ascii", "ASCII"])
def test_utf8_and_ascii_are_read(charset: str) -> None:
    check_charset(parse_media_type(f"application/json; charset={charset}"))
    assert parse_media_type(f"Application/JSON;charset={charset}") == MediaType(
        "application/json", (("charset", charset),)
    )


def test_json_nested_to_the_bound_is_read_and_past_it_refused() -> None:
    assert read_json(b"[" * 64 + b"]" * 64) is not None
    assert read_json(b'{"a":' * 63 + b"1" + b"}" * 63) is not None
    for deep in (b"[" * 65 + b"]" * 65, b'{"a":' * 64 + b"{}" + b"}" * 64, b"[" * 1500 + b"]" * 1500):
        with pytest.raises(Unreadable, match="nested deeper than 64"):
            read_json(deep)
