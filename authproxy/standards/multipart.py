"""`multipart/form-data` (RFC 7578 over RFC 2046) read strictly and rebuilt canonically.

Multipart parsers disagree wherever the framing is loose: a delimiter after a bare LF ends a part for the
stdlib email parser but not for python-multipart; `name*=` and a second `name=` are read by some and not
others; a `Content-Transfer-Encoding` part is decoded by some and passed raw by others; a per-part charset
is honoured by aiohttp only. The reader here accepts only what every parser frames alike:

- the boundary comes from exactly one `boundary` parameter (media.py refuses repeats and `boundary*`), made of
  RFC 2046's characters;
- the body starts with the first delimiter, every delimiter is `CRLF--boundary` followed by CRLF (or `--` for
  the last one, then at most a CRLF): no preamble, no epilogue, no padding, and the boundary appears nowhere
  else, so no bare-CR or bare-LF reading can find another part;
- each part's header lines end in CRLF, with exactly one `Content-Disposition: form-data` holding one plain
  `name` (no `name*`/`filename*`, nothing repeated), at most one `Content-Type` (never multipart, no charset
  other than UTF-8), and no `Content-Transfer-Encoding`; other header fields are dropped, as RFC 7578 §4.8
  says receivers must ignore them;
- a field without a filename is UTF-8 text; a part with an empty filename carries nothing (a file input
  with no file chosen, which is left out).

`write_multipart` rebuilds the parts with a fresh boundary found in none of them and CRLF framing; a file's
bytes pass unchanged inside it.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass

from authproxy.standards.media import MediaType, Unreadable, check_charset, parse_media_type, parse_params

__all__ = ["Part", "boundary_of", "read_multipart", "write_multipart"]

_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")  # RFC 2046 §5.1.1
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None  # present (even empty) on a file part
    content_type: str | None = None  # the part's media type, re-serialised; kept on file parts

    @property
    def text(self) -> str:
        """A field's value (fields are checked to be UTF-8 when read)."""
        return self.data.decode("utf-8")


def boundary_of(media: MediaType) -> str:
    boundary = media.param("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise Unreadable("the multipart body needs one boundary parameter of RFC 2046 characters")
    return boundary


def read_multipart(data: bytes, boundary: str) -> list[Part]:
    """The parts of `data` in order; raises Unreadable."""
    dash = b"--" + boundary.encode("ascii")
    starts = _delimiters(data, dash)
    parts: list[Part] = []
    for begin, end in itertools.pairwise(starts):
        part = _part(data[begin + len(dash) + 2 : end - 2])
        if part.filename == "" and not part.data:
            # A file input with no file chosen (what browsers send): Starlette reads an upload named "",
            # aiohttp a text field. Read as what it means, no file, it is left out of the rebuilt body.
            continue
        parts.append(part)
    return parts


def _delimiters(data: bytes, dash: bytes) -> list[int]:
    """The offsets of every delimiter; each must be a true one (see the module doc), the last the close."""
    if not data.startswith(dash):
        raise Unreadable("the multipart body does not start with its boundary")
    found: list[int] = []
    at = 0
    while at >= 0:
        if at and data[at - 2 : at] != _CRLF:
            raise Unreadable("the multipart boundary appears inside a part or after a bare line end")
        found.append(at)
        after = data[at + len(dash) : at + len(dash) + 2]
        if after == b"--":
            if data[at + len(dash) + 2 :] not in (b"", _CRLF):
                raise Unreadable("the multipart body has data after its closing boundary")
            return found
        if after != _CRLF:
            raise Unreadable("a multipart boundary line must end with CRLF")
        at = data.find(dash, at + len(dash))
    raise Unreadable("the multipart body has no closing boundary")


def _part(raw: bytes) -> Part:
    head, sep, data = raw.partition(_CRLF + _CRLF)
    if not sep:
        raise Unreadable("a multipart part has no end to its header lines")
    disposition: list[str] = []
    content_type: list[str] = []
    for line in head.split(_CRLF):
        name, value = _header_line(line)
        if name == b"content-disposition":
            disposition.append(value)
        elif name == b"content-type":
            content_type.append(value)
        elif name == b"content-transfer-encoding":
            raise Unreadable("a multipart part may not carry Content-Transfer-Encoding")
    if len(disposition) != 1 or len(content_type) > 1:
        raise Unreadable("a multipart part needs one Content-Disposition and at most one Content-Type")
    field, filename = _disposition(disposition[0])
    media = _part_type(content_type[0]) if content_type else None
    if filename == "" and data:
        raise Unreadable(
            "a multipart part with an empty filename is a file to some parsers, a field to others"
        )
    if filename is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise Unreadable("a multipart field is not UTF-8 text") from None
        return Part(field, data)
    return Part(field, data, filename, None if media is None else str(media))


def _header_line(line: bytes) -> tuple[bytes, str]:
    name, colon, value = line.partition(b":")
    if not colon or not _HEADER_NAME.fullmatch(name) or b"\r" in value or b"\n" in value:
        raise Unreadable("a multipart part has a malformed header line")
    try:
        text = value.decode("utf-8").strip(" \t")
    except UnicodeDecodeError:
        raise Unreadable("a multipart part header is not UTF-8") from None
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in text):
        raise Unreadable("a multipart part header holds a control character")
    return name.lower(), text


def _disposition(value: str) -> tuple[str, str | None]:
    kind, _, rest = value.partition(";")
    if kind.strip(" \t").lower() != "form-data":
        raise Unreadable("a multipart part's Content-Disposition must be form-data")
    params = dict(parse_params(";" + rest, "multipart Content-Disposition"))
    name, filename = params.get("name"), params.get("filename")
    if not name:
        raise Unreadable("a multipart part has no field name")
    for text in (name, filename or ""):
        # aiohttp strips a leading '/' or '\\' from a quoted name and splits it at a second ';' (its own
        # comments call that parser a one-case fix): such a name is read one way here and another there.
        if text.startswith("/") or ";" in text:
            raise Unreadable("a multipart field name or filename starts with '/' or holds ';'")
    return name, filename


def _part_type(value: str) -> MediaType:
    media = parse_media_type(value, what="multipart part Content-Type")
    if media.essence.startswith("multipart/"):
        raise Unreadable("a multipart part may not itself be multipart")
    check_charset(media, "a multipart part")
    return media


def _fresh_boundary() -> tuple[str, bytes]:
    # 28 characters: aiohttp reads a `_charset_` part in 32-byte chunks and asserts that "--", the boundary
    # and CRLF fit in one.
    boundary = "ap" + secrets.token_hex(13)
    return boundary, b"--" + boundary.encode("ascii")


def write_multipart(parts: list[Part]) -> tuple[str, bytes]:
    """(boundary, body): the parts framed afresh, CRLF throughout."""
    boundary, dash = _fresh_boundary()
    while any(dash in part.data for part in parts):  # 104 random bits: only a body built to contain it
        boundary, dash = _fresh_boundary()
    out = bytearray()
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += dash + _CRLF + f"Content-Disposition: {disposition}\r\n".encode()
        if part.content_type is not None:
            out += f"Content-Type: {part.content_type}\r\n".encode()
        out += _CRLF + part.data + _CRLF
    out += dash + b"--" + _CRLF
    return boundary, bytes(out)
