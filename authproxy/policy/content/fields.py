"""Reading and pinning one field of a query string or of a request body (JSON, urlencoded or multipart form).

A body a rule reads is read once, strictly, by its media type (authproxy/standards: anything a parser could
read two ways is malformed, 400), and what goes upstream is `Body.encode()`: the proxy's own canonical
encoding of what it read, never the client's bytes. So the upstream, whatever parser it runs, reads the very
fields that were checked. A pinned field is added when absent and refused when it names anyone else; a field
a rule reads given twice is refused as ambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote

from authproxy.config.content import FieldRef
from authproxy.errors import MalformedBody, NotCallersOwn
from authproxy.standards.forms import read_urlencoded, write_urlencoded
from authproxy.standards.json_text import read_json, write_json
from authproxy.standards.media import MediaType, Unreadable, check_charset, is_utf8_charset, parse_media_type
from authproxy.standards.multipart import Part, boundary_of, read_multipart, write_multipart

__all__ = ["Body", "field_values", "json_value", "malformed", "pin_body", "pin_query", "the_value"]

_URLENCODED = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_ABSENT = object()


def malformed(reason: str) -> MalformedBody:
    return MalformedBody(reason)


def _mismatch(ref: FieldRef) -> NotCallersOwn:
    return NotCallersOwn(f"{ref} must be the caller's own")


def _is_json(media: MediaType) -> bool:
    return media.essence == "application/json" or media.essence.endswith("+json")


class Body:
    """A request body read strictly by its media type; `encode()` is what the upstream receives."""

    __slots__ = ("_document", "_parts", "media")

    def __init__(self, data: bytes, content_type: str) -> None:
        if not content_type:
            raise malformed("this route's body must be JSON or a form, with its Content-Type")
        try:
            self.media = parse_media_type(content_type)
            check_charset(self.media)
            self._document: Any = _ABSENT
            self._parts: list[Part] | None = None
            if _is_json(self.media):
                self._document = read_json(data, what="the request body")
            elif self.media.essence == _URLENCODED:
                self._parts = [Part(n, v.encode()) for n, v in read_urlencoded(data, what="the request body")]
            elif self.media.essence == _MULTIPART:
                self._parts = read_multipart(data, boundary_of(self.media))
            else:
                raise Unreadable("this route's body must be JSON or a form (urlencoded or multipart)")
            _check_form_charset(self._parts)
        except Unreadable as bad:
            raise malformed(bad.reason) from None

    def json(self) -> Any:
        if self._document is _ABSENT:
            raise malformed("this route's body must be JSON (Content-Type: application/json)")
        return self._document

    def parts(self) -> list[Part]:
        if self._parts is None:
            raise malformed("this route's body must be a form (urlencoded or multipart/form-data)")
        return self._parts

    def form(self) -> list[tuple[str, str]]:
        """(name, value) of every plain field (file parts are not fields a rule can read)."""
        return [(p.name, p.text) for p in self.parts() if p.filename is None]

    def value(self) -> Any:
        """The body as a condition reads it: a JSON document as parsed, a form as name -> list of its plain
        field values (file parts are not fields)."""
        if self._parts is None:
            return self._document
        fields: dict[str, list[str]] = {}
        for name, text in self.form():
            fields.setdefault(name, []).append(text)
        return fields

    def encode(self) -> tuple[str, bytes]:
        """(Content-Type, body): the canonical encoding of what was read, pins included."""
        if self._parts is None:
            return self.media.essence, write_json(self._document)
        if self.media.essence == _URLENCODED:
            return _URLENCODED, write_urlencoded([(p.name, p.text) for p in self._parts])
        boundary, data = write_multipart(self._parts)
        return f"{_MULTIPART}; boundary={boundary}", data


def _check_form_charset(parts: list[Part] | None) -> None:
    # HTML's `_charset_` field names the charset of the rest of the form; some readers honour it.
    for part in parts or ():
        if part.name == "_charset_" and part.filename is None and not is_utf8_charset(part.text):
            raise Unreadable("the form names a charset other than UTF-8 in its _charset_ field")


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


def _refuse_case_variants(document: Any, ref: FieldRef) -> None:
    # Go's encoding/json matches object keys to fields ignoring case, with Unicode folding (U+017F, the long
    # s, is "s"), the last one winning: {"user_id": "alice", "USER_ID": "bob"} would be read as bob there.
    node = document
    for token in ref.pointer:
        if not isinstance(node, dict):
            return
        folded = token.casefold()
        if any(key != token and key.casefold() == folded for key in node):
            raise malformed(f"{ref} is also given in other letter case, which some parsers read as the same")
        node = node.get(token)


def json_value(document: Any, ref: FieldRef) -> Any:
    """The value at a JSON pointer of a parsed document; None when absent (null counts as absent)."""
    value = _json_get(document, ref)
    return None if value is _ABSENT else value


def field_values(body: Body, ref: FieldRef) -> list[Any]:
    """Every value the body gives `ref` (a JSON pointer has at most one; null counts as absent)."""
    if ref.where == "json":
        document = body.json()
        _refuse_case_variants(document, ref)
        value = json_value(document, ref)
        return [] if value is None else [value]
    parts = body.parts()
    _refuse_bracketed(ref, (p.name for p in parts))
    found = [p for p in parts if p.name == ref.name]
    if any(p.filename is not None for p in found):
        raise malformed(f"{ref} must be a plain form field, not a file")
    return [p.text for p in found]


def _refuse_bracketed(ref: FieldRef, names: Iterable[str]) -> None:
    # `user_id[]=b` or `user_id[x]=b` is another name here, but Express's qs and PHP merge it into `user_id`.
    if any(name.startswith(ref.name + "[") for name in names):
        raise malformed(f"{ref} is also given in bracket notation, which some parsers merge into it")


def the_value(body: Body, ref: FieldRef) -> Any:
    """The one value of a field a rule reads (_ABSENT-free: None when absent); twice is malformed."""
    found = field_values(body, ref)
    if len(found) > 1:
        raise malformed(f"{ref} is given more than once")
    return found[0] if found else None


def pin_query(raw_target: str, ref: FieldRef, value: str) -> str:
    """The target with `ref` (a query parameter) holding `value`; raises MalformedBody / NotCallersOwn."""
    path, mark, query = raw_target.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    _refuse_bracketed(ref, (name for name, _ in pairs))
    found = [v for name, v in pairs if name == ref.name]
    if len(found) > 1:
        raise malformed(f"{ref} is given more than once")
    if found:
        if found[0] != value:
            raise _mismatch(ref)
        return raw_target
    added = f"{quote(ref.name, safe='')}={quote(value, safe='')}"
    return f"{path}?{query}&{added}" if mark and query else f"{path}?{added}"


def pin_body(body: Body, ref: FieldRef, value: str) -> None:
    """Hold `ref` to `value` in the body (set when absent); raises MalformedBody / NotCallersOwn."""
    found = the_value(body, ref)
    if found is not None:
        if found != value:
            raise _mismatch(ref)
        return
    if ref.where == "json":
        _json_set(body, ref, value)
    else:
        body.parts().append(Part(ref.name, value.encode()))


def _json_set(body: Body, ref: FieldRef, value: str) -> None:
    document = body.json()
    parent = _json_get(document, FieldRef("json", "", ref.pointer[:-1])) if len(ref.pointer) > 1 else document
    if not isinstance(parent, dict):
        raise malformed(f"{ref}: the body has no object to hold it")
    parent[ref.pointer[-1]] = value
