"""Reading and pinning one field of a query string, a form body (urlencoded or multipart) or a JSON body.

Pure functions over bytes. A pinned field is left byte for byte as sent when it already holds the
caller's value, added when absent, and refused when it names anyone else; a field given twice is
refused as ambiguous (the upstream might read the other copy). Anything that cannot be parsed with
certainty is malformed (400): it reaches nothing.
"""

from __future__ import annotations

import json
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, quote

from authproxy.config.content import FieldRef
from authproxy.errors import ContentRejected

__all__ = ["Body", "field_values", "malformed", "pin_body", "pin_query"]

_URLENCODED = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_ABSENT = object()


def malformed(reason: str) -> ContentRejected:
    return ContentRejected(400, "bad_request", reason)


def _mismatch(ref: FieldRef) -> ContentRejected:
    return ContentRejected(403, "forbidden", f"{ref} must be the caller's own")


class Body:
    """A request body and its media type, parsed once on first use."""

    __slots__ = ("_form", "_json", "data", "media_type", "raw_type")

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data = data
        self.raw_type = content_type
        self.media_type = content_type.partition(";")[0].strip().lower()
        self._json: object = _ABSENT
        self._form: list[tuple[str, str]] | None = None

    def json(self) -> Any:
        if self._json is _ABSENT:
            if self.media_type != "application/json" and not self.media_type.endswith("+json"):
                raise malformed("this route's body must be JSON (Content-Type: application/json)")
            try:
                self._json = json.loads(self.data, object_pairs_hook=_unique_keys)
            except (UnicodeDecodeError, ValueError) as bad:
                raise malformed("the request body is not valid JSON") from bad
        return self._json

    def form(self) -> list[tuple[str, str]]:
        if self._form is None:
            self._form = _parse_form(self.data, self.media_type, self.raw_type)
        return self._form


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_form(data: bytes, media_type: str, raw_type: str) -> list[tuple[str, str]]:
    if media_type == _URLENCODED:
        try:
            return parse_qsl(data.decode("ascii"), keep_blank_values=True, strict_parsing=bool(data))
        except (UnicodeDecodeError, ValueError) as bad:
            raise malformed("the form body is not valid application/x-www-form-urlencoded") from bad
    if media_type == _MULTIPART:
        return [(name, value) for name, value, _ in _multipart_fields(data, raw_type)]
    raise malformed("this route's body must be a form (urlencoded or multipart/form-data)")


def _multipart_fields(data: bytes, raw_type: str) -> list[tuple[str, str, bool]]:
    """(name, text value, is_file) per part; the stdlib MIME parser does the framing."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + raw_type.encode("latin-1") + b"\r\n\r\n" + data
    )
    if not message.is_multipart() or message.defects or not message.get_boundary():
        raise malformed("the multipart body is not well formed")
    fields: list[tuple[str, str, bool]] = []
    for part in message.iter_parts():
        # One disposition per part: with two, another multipart parser may read the other name.
        if len(part.get_all("content-disposition", [])) != 1 or part.defects:
            raise malformed("a multipart part must have exactly one Content-Disposition")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise malformed("a multipart part has no field name")
        is_file = part.get_param("filename", header="content-disposition") is not None
        fields.append((name, "" if is_file else _part_text(part), is_file))
    return fields


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise malformed("a multipart field is not text")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise malformed("a multipart field is not UTF-8 text") from bad


def _json_get(document: Any, ref: FieldRef) -> Any:
    node = document
    for token in ref.pointer:
        if isinstance(node, dict):
            node = node.get(token, _ABSENT)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return _ABSENT
        if node is _ABSENT:
            return _ABSENT
    return node


def field_values(body: Body, ref: FieldRef) -> list[Any]:
    """Every value the body gives `ref` (a JSON pointer has at most one; null counts as absent)."""
    if ref.where == "json":
        value = _json_get(body.json(), ref)
        return [] if value is _ABSENT or value is None else [value]
    return [value for name, value in body.form() if name == ref.name]


def pin_query(raw_target: str, ref: FieldRef, value: str) -> str:
    """The target with `ref` (a query parameter) holding `value`; raises ContentRejected."""
    path, mark, query = raw_target.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True)
    except ValueError as bad:  # pragma: no cover - parse_qsl is lenient without strict_parsing
        raise malformed("the query string is not well formed") from bad
    found = [v for name, v in pairs if name == ref.name]
    if len(found) > 1:
        raise malformed(f"{ref} is given more than once")
    if found:
        if found[0] != value:
            raise _mismatch(ref)
        return raw_target
    added = f"{quote(ref.name, safe='')}={quote(value, safe='')}"
    return f"{path}?{query}&{added}" if mark and query else f"{path}?{added}"


def pin_body(body: Body, ref: FieldRef, value: str) -> bytes:
    """The body with `ref` holding `value` (unchanged bytes if it already does); raises ContentRejected."""
    found = field_values(body, ref)
    if len(found) > 1:
        raise malformed(f"{ref} is given more than once")
    if found:
        if found[0] != value:
            raise _mismatch(ref)
        return body.data
    if ref.where == "json":
        return _json_set(body, ref, value)
    if body.media_type == _URLENCODED:
        added = f"{quote(ref.name, safe='')}={quote(value, safe='')}".encode()
        body.data = body.data + b"&" + added if body.data else added
    else:
        body.data = _multipart_add(body, ref.name, value)
    body._form = None
    return body.data


def _json_set(body: Body, ref: FieldRef, value: str) -> bytes:
    document = body.json()
    parent = _json_get(document, FieldRef("json", "", ref.pointer[:-1])) if len(ref.pointer) > 1 else document
    if not isinstance(parent, dict):
        raise malformed(f"{ref}: the body has no object to hold it")
    parent[ref.pointer[-1]] = value
    body.data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return body.data


def _multipart_add(body: Body, name: str, value: str) -> bytes:
    boundary = Message(policy=HTTP)
    boundary["Content-Type"] = body.raw_type
    marker = b"--" + (boundary.get_boundary() or "").encode("latin-1")
    end = body.data.rfind(marker + b"--")
    if end < 0 or '"' in name or "\r" in name or "\n" in name:
        raise malformed("the multipart body is not well formed")
    part = (
        marker
        + f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
    )
    return body.data[:end] + part + body.data[end:]
